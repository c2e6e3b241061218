"""Evaluate a generator as a listener would: one table of real audio, the resynthesis ceiling
and model outputs, stored with the model version, plus listening samples for staff.

Held-out audio is catalogue recordings the model never trained on that permit song-level
inference (their audio is already compared with outputs by retrieval and the audit). They are
split in two: half A is the real distribution every set is measured against, half B is the
"real" row and, through the model's own log-mel + Griffin-Lim, the ceiling row.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from catalog.audio.decoding import AudioDecodeError, load_mono
from catalog.encoders import WindowSpec, split_windows
from catalog.encoders.musicnn import MusicnnEmbedder
from catalog.models import Recording
from catalog.retrieval.runtime import loaded_encoder
from config.exceptions import DomainError, InvalidInput
from generation.evaluation import (
    GeneratedTrial,
    conditioning_of,
    conditioning_of_vectors,
    generate_trials,
)
from generation.listening import write_spectrograms, write_wav
from generation.model import Generator
from generation.models import ModelVersion
from generation.quality import AudioClip, measure_set, reference_vectors
from generation.selectors import permitted_track_vectors
from generation.services.models import model_version_record_quality

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
CLIP_SECONDS, CLIP_HOP = 3.0, 1.5  # CLAP vectors per 3-s clip, as the similarity audit cuts
SAMPLES_KEPT = 6  # listening samples per evaluated model
MUSICNN_EXCERPTS = 3  # 10-s excerpts a recording's musicnn vector is the mean of


@dataclass(frozen=True)
class EvaluationSettings:
    # 200 outputs of 10 s give 600 musicnn vectors (200-d): enough for the extrapolated
    # (sample-size-unbiased) Frechet distance; with 20 the bias alone read 16 (docs/generation.md)
    generations: int = 200
    seconds: float = 10.0
    references_per_generation: int = 2
    others_per_generation: int = 10  # random recordings each output is also compared with
    excerpts_per_recording: int | None = None  # of the real reference half A; None: all
    seed: int = 0
    cfg_scale: float | None = None  # None: each model's own sampler default
    candidates: int | None = None  # draws per output (best kept); None: as served


def generator_evaluate(
    *,
    model_version: ModelVersion,
    generator: Generator,
    label: str,
    settings_: EvaluationSettings = EvaluationSettings(),
    baseline: tuple[str, Generator] | None = None,
    progress: Progress | None = None,
    store: bool = True,
) -> dict[str, Any]:
    """Measure `generator` (the model version's, or a candidate checkpoint trained on the same
    data) and optionally a baseline beside it; store the report on the model version."""
    say = progress or (lambda message: None)
    if settings_.candidates is None:
        settings_ = replace(settings_, candidates=settings.GENERATION_CANDIDATES)
    rate = generator.sample_rate
    track_vectors = permitted_track_vectors(encoder_version=model_version.encoder)
    needed = settings_.references_per_generation + settings_.others_per_generation
    if len(track_vectors) < needed:
        raise InvalidInput(
            f"{len(track_vectors)} embedded recordings permit song-level inference; "
            f"{needed} are needed (references + others per output)"
        )
    held_out = _held_out(model_version, track_vectors)
    if len(held_out) < 4:
        raise InvalidInput(
            f"{len(held_out)} held-out recordings permit song-level inference; at least 4 are "
            "needed (two halves of two)"
        )
    order = sorted(held_out)
    random.Random(settings_.seed).shuffle(order)
    half_a, half_b = order[: len(order) // 2], order[len(order) // 2 :]
    say(f"held-out recordings: {len(half_a)} reference, {len(half_b)} comparison")
    real_a = _excerpts(half_a, settings_.excerpts_per_recording, settings_.seconds, rate)
    per_b = max(1, -(-settings_.generations // len(half_b)))
    real_b = _excerpts(half_b, per_b, settings_.seconds, rate)[: settings_.generations]

    musicnn = MusicnnEmbedder("MTT_musicnn")
    embedders = _embedders(model_version, musicnn)
    reference = reference_vectors(real_a, rate, embedders)
    say(f"reference set: {len(real_a)} clips; spaces {', '.join(embedders)}")
    rows = [measure_set("real held-out audio", real_b, rate, embedders=embedders,
                        reference=reference, seed=settings_.seed)]  # fmt: skip
    ceiling = [AudioClip(_resynthesised(generator, c.audio), c.source) for c in real_b]
    name = "ceiling: log-mel + Griffin-Lim of real audio"
    rows.append(measure_set(name, ceiling, rate, embedders=embedders, reference=reference,
                            seed=settings_.seed))  # fmt: skip
    say("real and ceiling rows measured")

    samples: list[dict[str, Any]] = []
    recording_vectors: dict[int, np.ndarray] = {}  # musicnn, shared by the model rows
    models = [*([baseline] if baseline else []), (label, generator)]
    for index, (name, candidate) in enumerate(models):
        trials = generate_trials(
            generator=candidate, track_vectors=track_vectors, generations=settings_.generations,
            references_per_generation=settings_.references_per_generation,
            others_per_generation=settings_.others_per_generation,
            seconds=settings_.seconds, seed=settings_.seed, cfg_scale=settings_.cfg_scale,
            candidates=settings_.candidates, encoder=loaded_encoder(model_version.encoder),
            on_trial=lambda n, t, name=name: say(f"{name}: output {n + 1}/{settings_.generations}"),
        )  # fmt: skip
        clips = [
            AudioClip(t.audio, f"output {n} (refs {t.reference_ids})", tuple(t.reference_ids))
            for n, t in enumerate(trials)
        ]
        row = measure_set(name, clips, rate, embedders=embedders, reference=reference,
                          seed=settings_.seed)  # fmt: skip
        row.extra.update(_model_extras(model_version, candidate, trials, track_vectors))
        row.extra["conditioning_musicnn"] = _musicnn_conditioning(
            trials, row.vectors["musicnn"], rate, musicnn, recording_vectors
        )
        rows.append(row)
        if index == len(models) - 1 and store:  # a sweep keeps the stored report's samples
            samples = _write_samples(model_version, trials, rate)
    report = {
        "label": label,
        "measured_at": timezone.now().isoformat(timespec="seconds"),
        "settings": settings_.__dict__,
        "held_out": {"reference": half_a, "comparison": half_b},
        "spaces": {
            "musicnn": "MTT musicnn penultimate layer (200-d) of 3-s patches (musicnn 0.1.0)",
            "clap": f"the project's CLAP encoder {model_version.encoder} on 3-s clips, hop 1.5 s",
            "unbiased": "FD-infinity: both sets subsampled by clip to fractions "
            "0.4-1.0, FD = FD_inf + k / fraction fitted, bootstrap SE over clips",
        },
        "rows": [r.to_dict() for r in rows],
        "samples": samples,
    }
    if store:  # a sweep (other sampler settings) is printed, not kept as the version's report
        model_version_record_quality(model_version=model_version, quality={"evaluation": report})
    return report


def _held_out(model_version: ModelVersion, track_vectors: dict[int, np.ndarray]) -> list[int]:
    trained = set(model_version.training_recording_ids)
    return [rid for rid in track_vectors if rid not in trained]


def _excerpts(
    ids: list[int], per_recording: int | None, seconds: float, rate: int
) -> list[AudioClip]:
    """`per_recording` excerpts spread evenly over each recording (whole if it is shorter);
    None: every back-to-back excerpt of the recording (at least one)."""
    clips = []
    for recording in Recording.objects.filter(pk__in=ids).order_by("pk"):
        try:
            audio = load_mono(Path(recording.audio_file.path), sample_rate=rate)
        except (AudioDecodeError, OSError, ValueError) as exc:
            log.warning("held-out recording %s skipped: %s", recording.pk, exc)
            continue
        length = int(seconds * rate)
        room = max(0, len(audio) - length)
        if per_recording is None:
            for start in range(0, max(1, len(audio) - length + 1), length):
                clips.append(AudioClip(audio[start : start + length], f"recording {recording.pk}"))
            continue
        for k in range(per_recording):
            start = room * (k + 1) // (per_recording + 1)
            clips.append(AudioClip(audio[start : start + length], f"recording {recording.pk}"))
    return clips


def _resynthesised(generator: Generator, audio: np.ndarray) -> np.ndarray:
    frontend = generator.frontend
    out = frontend.to_audio(frontend.logmel(audio), len(audio), seed=0)
    peak = float(np.max(np.abs(out))) or 1.0
    return (out / peak * 0.89).astype(np.float32)


def _clap_clip_vectors(encoder, clips, rate: int, seconds: float = CLIP_SECONDS) -> list:
    """Per clip, the CLAP vectors of its `seconds`-long windows (hop half of that)."""
    import librosa

    spec = WindowSpec(seconds, seconds / 2, min_seconds=seconds)
    out = []
    for clip in clips:
        if rate != encoder.sample_rate:
            clip = librosa.resample(clip, orig_sr=rate, target_sr=encoder.sample_rate)
        windows = split_windows(np.asarray(clip, np.float32), encoder.sample_rate, spec)
        out.append(encoder.embed_audio(np.stack([w for _, w in windows])).astype(np.float64))
    return out


def _embedders(model_version: ModelVersion, musicnn: MusicnnEmbedder) -> dict[str, Callable]:
    encoder = loaded_encoder(model_version.encoder)

    def musicnn_vectors(clips, rate):
        return np.concatenate([musicnn.embed(c, rate, layer="penultimate") for c in clips])

    def clap_vectors(clips, rate):
        return np.concatenate(_clap_clip_vectors(encoder, clips, rate))

    return {"musicnn": musicnn_vectors, "clap": clap_vectors}


def outputs_clap_frechet(
    *,
    model_version: ModelVersion,
    outputs: dict[str, list[np.ndarray]],
    sample_rate: int,
    heldout_ids: list[int],
    excerpts_per_recording: int = 4,
) -> dict[str, dict[str, float]]:
    """Frechet distance in the model's CLAP space from each named set of outputs to held-out
    catalogue audio, with a bootstrap SE over output clips. A quick check for comparing two
    models on the same seeds (equal set sizes, so the small-sample bias is the same for both);
    `evaluate_generator` is the full measurement."""
    from generation.quality import frechet_with_error

    encoder = loaded_encoder(model_version.encoder)
    shortest = min(len(a) for o in outputs.values() for a in o) / sample_rate
    seconds = min(CLIP_SECONDS, shortest / 2)  # at least 3 clips per output
    real = _excerpts(heldout_ids, excerpts_per_recording, 2 * seconds, sample_rate)
    if len(real) < 2:
        raise DomainError("not enough held-out audio for a Frechet distance")
    real_vectors = np.concatenate(
        _clap_clip_vectors(encoder, [c.audio for c in real], sample_rate, seconds)
    )
    result = {}
    for name, audio in outputs.items():
        clips = _clap_clip_vectors(encoder, audio, sample_rate, seconds)
        value, error = frechet_with_error(clips, real_vectors)
        result[name] = {
            "fd": round(value, 4),
            "se": round(error, 4),
            "vectors": sum(map(len, clips)),
        }
    return result


def _musicnn_conditioning(
    trials: list[GeneratedTrial],
    output_vectors: list[np.ndarray],
    rate: int,
    musicnn: MusicnnEmbedder,
    recording_vectors: dict[int, np.ndarray],
) -> dict[str, Any]:
    """The conditioning comparison in musicnn's space, which neither the model nor the choice
    between candidates ever sees (both work in CLAP's): recordings by the mean vector of
    three 10-s excerpts (added to `recording_vectors` once), outputs by the mean of their 3-s
    patches (`output_vectors`, as the Frechet distance embedded them)."""
    for rid in sorted({r for t in trials for r in (*t.reference_ids, *t.other_ids)}):
        if rid in recording_vectors:
            continue
        excerpts = _excerpts([rid], MUSICNN_EXCERPTS, 10.0, rate)
        if excerpts:
            vectors = [musicnn.embed(c.audio, rate, layer="penultimate") for c in excerpts]
            recording_vectors[rid] = np.concatenate(vectors).mean(axis=0)
    measured = [
        (t, v.mean(axis=0))
        for t, v in zip(trials, output_vectors, strict=True)
        if all(r in recording_vectors for r in (*t.reference_ids, *t.other_ids))
    ]
    if not measured:
        return {"problem": "no recording audio could be read"}
    kept, outputs = zip(*measured, strict=True)
    return conditioning_of_vectors(kept, outputs, recording_vectors).to_dict()


def _model_extras(
    model_version: ModelVersion,
    generator: Generator,
    trials: list[GeneratedTrial],
    track_vectors: dict[int, np.ndarray],
) -> dict[str, Any]:
    encoder = loaded_encoder(model_version.encoder)
    conditioning = conditioning_of(
        trials, sample_rate=generator.sample_rate, encoder=encoder, track_vectors=track_vectors
    ).to_dict()
    seconds = [len(t.audio) / generator.sample_rate for t in trials]
    rtf = float(np.median([t.seconds_taken / s for t, s in zip(trials, seconds, strict=True)]))
    return {
        "conditioning": conditioning,
        "memorisation": _memorisation(model_version, generator, trials),
        "real_time_factor": round(rtf, 3),
    }


def _memorisation(
    model_version: ModelVersion, generator: Generator, trials: list[GeneratedTrial]
) -> dict[str, Any]:
    """Outputs with a clip of a training recording (not a reference) at the audit's flag."""
    from generation.providers import near_copies

    training = list(model_version.training_recording_ids)
    flagged = []
    for n, trial in enumerate(trials):
        try:
            matches = near_copies(
                audio=trial.audio, sample_rate=generator.sample_rate,
                reference_ids=trial.reference_ids, training_ids=training,
            )  # fmt: skip
        except DomainError as exc:  # no clips or no calibration: report it, do not guess
            return {"rate": None, "problem": exc.message}
        if any(m.in_training_set for m in matches):
            flagged.append(n)
    return {
        "rate": round(len(flagged) / len(trials), 4),
        "flagged_outputs": flagged,
        "threshold": str(settings.AUDIT_FLAG_THRESHOLD),
    }


def _write_samples(
    model_version: ModelVersion, trials: list[GeneratedTrial], rate: int
) -> list[dict[str, Any]]:
    """WAVs and one spectrogram sheet per output (output above its references)."""
    folder = Path(settings.MEDIA_ROOT) / "quality" / str(model_version.pk)
    samples = []
    titles = dict(Recording.objects.filter(
        pk__in={r for t in trials[:SAMPLES_KEPT] for r in t.reference_ids}
    ).values_list("pk", "title"))  # fmt: skip
    for n, trial in enumerate(trials[:SAMPLES_KEPT]):
        output_name = f"output-{n}.wav"
        write_wav(folder / output_name, trial.audio, rate)
        panels = [(f"output {n} (seed {n})", trial.audio)]
        references = []
        for rid in trial.reference_ids:
            excerpt = _excerpts([rid], 1, 10.0, rate)
            if not excerpt:
                continue
            name = f"reference-{n}-{rid}.wav"
            write_wav(folder / name, excerpt[0].audio, rate)
            panels.append(
                (f"reference {rid}: {titles.get(rid, '')} (middle 10 s)", excerpt[0].audio)
            )
            references.append({"recording_id": rid, "title": titles.get(rid, ""), "file": name})
        sheet = f"spectrograms-{n}.png"
        write_spectrograms(folder / sheet, panels, rate)
        samples.append({"output": output_name, "references": references, "spectrograms": sheet})
    return samples
