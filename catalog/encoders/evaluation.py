"""Held-out quality of a default-clap encoder: the report `train_encoder` stores and prints,
and `evaluate_encoder` recomputes for any checkpoint so encoders are compared alike.

- text->audio recall: the query is a recording's canonical caption (catalogue facts only), the
  candidates are clips from the held-out last part of every recording;
- clip->recording recall: a held-out clip's nearest track vector is its own recording's;
- prompt probes: prompts a maker types that the facts do not spell out ("calm orchestral
  strings"), scored by the genre of the top-5 held-out clips.
Plain module: no Django imports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from catalog.encoders.captions import canonical_caption
from catalog.encoders.default_clap import DefaultClapConfig, FrozenSentenceEncoder, pick_device
from catalog.encoders.training import (
    TrainingConfig,
    TrainingItem,
    _logmels,
    _pad,
    training_ends,
)


def _embed_mels(audio_tower, windows: list) -> np.ndarray:
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(windows), 32):
            batch = torch.stack(windows[start : start + 32]).unsqueeze(1)
            out.append(torch.nn.functional.normalize(audio_tower.forward_logmel(batch), dim=-1))
    return torch.cat(out).cpu().numpy()


def evaluate_held_out(
    audio_tower,
    text_projection,
    text_encoder: FrozenSentenceEncoder,
    items: Sequence[TrainingItem],
    mels: list,
    train_end: list[int],
    model_config: DefaultClapConfig,
    tc: TrainingConfig,
) -> dict[str, Any]:
    """Recall on clips from the held-out tail of each recording.

    text->audio: the query is a recording's canonical caption; a hit at K is a clip among the
    top K whose recording has the same caption (identical metadata cannot be told apart by
    text). clip->recording: nearest track vector (mean of training-part windows) is the clip's
    own recording. Chance levels are reported beside each figure.
    """
    import torch

    frames = model_config.window_frames
    clips, clip_owner = [], []
    for index, (mel, end) in enumerate(zip(mels, train_end, strict=True)):
        starts = list(range(end, len(mel) - frames + 1, frames))[: tc.eval_clips_per_recording]
        for start in starts:
            clips.append(mel[start : start + frames])
            clip_owner.append(index)
    if len(set(clip_owner)) < 2:
        return {"held_out_clips": len(clips), "note": "too little held-out audio to evaluate"}

    clip_vectors = _embed_mels(audio_tower, clips)
    owners = np.array(clip_owner)

    captions = [canonical_caption(item.metadata) for item in items]
    caption_ids = {c: n for n, c in enumerate(sorted(set(captions)))}
    clip_caption = np.array([caption_ids[captions[o]] for o in owners])
    query_owner = sorted(set(clip_owner))
    with torch.inference_mode():
        sentence = torch.from_numpy(text_encoder.encode([captions[o] for o in query_owner]))
        text_vectors = torch.nn.functional.normalize(
            text_projection(sentence.to(next(text_projection.parameters()).device)), dim=-1
        )
    text_vectors = text_vectors.cpu().numpy()
    ranking = np.argsort(-(text_vectors @ clip_vectors.T), axis=1)
    hits = {1: [], 10: []}
    chance = {1: [], 10: []}
    for row, owner in enumerate(query_owner):
        relevant = clip_caption == caption_ids[captions[owner]]
        for k in hits:
            hits[k].append(bool(relevant[ranking[row, :k]].any()))
            # chance that a random top-k contains a relevant clip
            n, r = len(relevant), int(relevant.sum())
            chance[k].append(1 - math.comb(n - r, min(k, n)) / math.comb(n, min(k, n)))

    track_vectors = []
    for mel, end in zip(mels, train_end, strict=True):
        windows = [
            _pad(mel[s : s + frames], frames) for s in range(0, max(1, end - frames + 1), frames)
        ]
        mean = _embed_mels(audio_tower, windows).mean(axis=0)
        track_vectors.append(mean / np.linalg.norm(mean))
    nearest = np.argmax(clip_vectors @ np.stack(track_vectors).T, axis=1)
    return {
        "held_out_clips": len(clips),
        "held_out_recordings": len(query_owner),
        "distinct_captions": len(caption_ids),
        "text_to_audio_recall_at_1": float(np.mean(hits[1])),
        "text_to_audio_recall_at_10": float(np.mean(hits[10])),
        "text_to_audio_chance_at_1": float(np.mean(chance[1])),
        "text_to_audio_chance_at_10": float(np.mean(chance[10])),
        "clip_to_recording_recall_at_1": float(np.mean(nearest == owners)),
        "clip_to_recording_chance_at_1": 1.0 / len(items),
    }


# Prompts a maker types that catalogue facts do not spell out, with the genre (or subgenre)
# words a fitting recording of the demo catalogue carries.
PROMPT_PROBES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("calm orchestral strings", ("classical", "orchestral")),
    ("violins and cellos", ("classical", "orchestral")),
    ("techno beat with synthesizers", ("electronic",)),
    ("electronic drums and synth bass", ("electronic",)),
    ("slow ambient drones", ("ambient",)),
)


def prompt_probes(
    audio_tower, text_projection, text_encoder, items, mels, train_end, model_config, k: int = 5
) -> dict[str, Any]:
    """Share of the top-k held-out clips whose recording's genre fits each probe prompt."""
    import torch

    frames = model_config.window_frames
    clips, genres = [], []
    for item, mel, end in zip(items, mels, train_end, strict=True):
        for start in range(end, len(mel) - frames + 1, frames):
            clips.append(mel[start : start + frames])
            words = f"{item.metadata.get('genre') or ''} {item.metadata.get('subgenre') or ''}"
            genres.append(words.lower())
    if len(clips) < k:
        return {}
    vectors = _embed_mels(audio_tower, clips)
    with torch.inference_mode():
        sentence = torch.from_numpy(text_encoder.encode([p for p, _ in PROMPT_PROBES]))
        device = next(text_projection.parameters()).device
        text = torch.nn.functional.normalize(text_projection(sentence.to(device)), dim=-1)
    top = np.argsort(-(text.cpu().numpy() @ vectors.T), axis=1)[:, :k]
    per_prompt = {
        prompt: float(np.mean([any(w in genres[i] for w in fits) for i in row]))
        for (prompt, fits), row in zip(PROMPT_PROBES, top, strict=True)
    }
    return {
        f"prompt_probe_precision_at_{k}": float(np.mean(list(per_prompt.values()))),
        "prompt_probes": per_prompt,
    }


def held_out_report(
    audio_tower, text_projection, text_encoder, items, mels, train_end, model_config, tc
) -> dict[str, Any]:
    """Recall on the held-out tails plus the prompt probes: what a training run stores."""
    quality = evaluate_held_out(
        audio_tower, text_projection, text_encoder, items, mels, train_end, model_config, tc
    )
    quality.update(prompt_probes(audio_tower, text_projection, text_encoder, items, mels,
                                 train_end, model_config))  # fmt: skip
    return quality


def held_out_quality(
    audio_tower, text_projection, items: Sequence[TrainingItem], model_config, tc: TrainingConfig
) -> dict[str, Any]:
    """The training run's held-out report for any checkpoint (to compare encoders alike)."""
    audio_tower.eval()
    text_projection.eval()
    mels = _logmels(audio_tower, items, next(audio_tower.parameters()).device)
    train_end = training_ends(mels, model_config.window_frames, tc.holdout_fraction)
    text_encoder = FrozenSentenceEncoder(pick_device())
    return held_out_report(
        audio_tower, text_projection, text_encoder, items, mels, train_end, model_config, tc
    )
