"""Pseudo-labels for training captions: what musicnn's MagnaTagATune tagger hears.

Catalogue facts say "Orchestral, dramatic" at best; a maker types "calm orchestral strings".
musicnn (weights inside its wheel, `musicnn.py`) tags audio with 50 MagnaTagATune words
(strings, violin, techno, drums, quiet, ...). The encoder's training captions use a recording's
most probable tags beside its facts, so the text side learns those words against real audio.
Tags are computed on the part of a recording the encoder trains on, never its held-out tail.
Plain module: no Django imports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# MagnaTagATune spells some tags several ways; captions use one word for each idea.
SYNONYMS = {
    "classic": "classical",
    "no vocals": "instrumental",
    "no vocal": "instrumental",
    "no voice": "instrumental",
    "vocals": "vocal",
    "voice": "vocal",
    "singing": "vocal",
    "man": "male vocal",
    "male": "male vocal",
    "male voice": "male vocal",
    "woman": "female vocal",
    "female": "female vocal",
    "female voice": "female vocal",
    "beats": "beat",
    "choral": "choir",
}
# Tags that describe nothing a maker would ask for.
IGNORED = frozenset({"weird"})


@dataclass(frozen=True)
class PseudoTagSettings:
    model: str = "MTT_musicnn"
    threshold: float = 0.2  # mean probability over the recording's patches
    top: int = 4
    max_patches: int = 40  # evenly spaced 3-s patches per recording (cost bound)


def pseudo_tags(
    audio: np.ndarray, sample_rate: int, tagger, settings: PseudoTagSettings | None = None
) -> list[str]:
    """The recording's most probable tags (synonyms merged), most probable first.

    `tagger` is a `MusicnnEmbedder` (anything with `taggram(audio, sr)` and `labels`).
    """
    settings = settings or PseudoTagSettings()
    audio = np.asarray(audio, dtype=np.float32)
    patch = int(round(tagger.patch_seconds * sample_rate))
    count = len(audio) // patch if patch else 0
    if count > settings.max_patches:  # evenly spaced patches, concatenated
        picks = np.linspace(0, count - 1, settings.max_patches).round().astype(int)
        audio = np.concatenate([audio[i * patch : (i + 1) * patch] for i in picks])
    mean = tagger.taggram(audio, sample_rate).mean(axis=0)
    tags: list[str] = []
    for index in np.argsort(-mean, kind="stable"):
        if mean[index] < settings.threshold or len(tags) >= settings.top:
            break
        label = SYNONYMS.get(tagger.labels[index], tagger.labels[index])
        if label not in IGNORED and label not in tags:
            tags.append(label)
    return tags
