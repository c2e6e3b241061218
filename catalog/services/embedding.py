"""Embed the catalogue with the active encoder: 10-s window vectors plus one track vector per
recording, written together in one transaction per recording (so an interrupted run resumes
where it stopped and never leaves a recording half-embedded)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.db import transaction

from catalog.audio.decoding import AudioDecodeError, load_mono
from catalog.encoders import AudioTextEncoder, EncoderError, WindowSpec, split_windows
from catalog.models import EncoderVersion, Recording, RecordingEmbedding, RecordingWindowEmbedding
from catalog.retrieval.runtime import active_encoder_version, loaded_encoder
from catalog.services.consent_masks import consent_mask_of
from config.exceptions import InvalidInput

RETRIEVAL_WINDOWS = WindowSpec(window_seconds=10.0, hop_seconds=10.0, min_seconds=2.0)


def recordings_missing_embeddings(*, encoder_version: EncoderVersion):
    embedded = RecordingEmbedding.objects.filter(encoder=encoder_version).values("recording_id")
    return Recording.objects.exclude(pk__in=embedded).order_by("pk")


def track_vector(window_vectors: np.ndarray) -> np.ndarray:
    mean = window_vectors.astype(np.float64).mean(axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


def audio_embed_windows(
    *, audio: np.ndarray, encoder: AudioTextEncoder, spec: WindowSpec = RETRIEVAL_WINDOWS
) -> tuple[list[float], np.ndarray]:
    """(window starts, (n, 512) vectors) of mono audio at the encoder's sample rate."""
    try:
        windows = split_windows(audio, encoder.sample_rate, spec)
        vectors = encoder.embed_audio(np.stack([w for _, w in windows]))
    except EncoderError as exc:
        raise InvalidInput(str(exc)) from exc
    return [start for start, _ in windows], vectors


def recording_embed(
    *, recording: Recording, encoder_version: EncoderVersion, encoder: AudioTextEncoder
) -> RecordingEmbedding:
    """Embed one recording (no-op if already embedded by this encoder version)."""
    existing = RecordingEmbedding.objects.filter(
        recording=recording, encoder=encoder_version
    ).first()
    if existing:
        return existing
    try:
        audio = load_mono(Path(recording.audio_file.path), sample_rate=encoder.sample_rate)
    except (AudioDecodeError, OSError) as exc:
        raise InvalidInput(f"recording {recording.pk} cannot be decoded: {exc}") from exc
    starts, vectors = audio_embed_windows(audio=audio, encoder=encoder)
    with transaction.atomic():
        # locked, so no consent change can land between reading the mask and the inserts
        Recording.objects.select_for_update().filter(pk=recording.pk).exists()
        mask = consent_mask_of(recording_id=recording.pk)
        RecordingWindowEmbedding.objects.filter(
            recording=recording,
            encoder=encoder_version,
            window_seconds=RETRIEVAL_WINDOWS.window_seconds,
        ).delete()  # leftovers of an interrupted run (rows without a track vector)
        RecordingWindowEmbedding.objects.bulk_create(
            RecordingWindowEmbedding(
                recording=recording,
                encoder=encoder_version,
                window_seconds=RETRIEVAL_WINDOWS.window_seconds,
                start_seconds=start,
                embedding=vector,
                consent_mask=mask,
            )
            for start, vector in zip(starts, vectors, strict=True)
        )
        return RecordingEmbedding.objects.create(
            recording=recording,
            encoder=encoder_version,
            window_count=len(starts),
            embedding=track_vector(vectors),
            consent_mask=mask,
        )


def catalogue_embed(
    *,
    encoder_version: EncoderVersion | None = None,
    on_progress: Callable[[Recording, int, int], None] | None = None,
) -> dict[str, int]:
    """Embed every recording the encoder version has not embedded yet."""
    encoder_version = encoder_version or active_encoder_version()
    encoder = loaded_encoder(encoder_version)
    missing = list(recordings_missing_embeddings(encoder_version=encoder_version))
    counts = {"embedded": 0, "failed": 0, "already": Recording.objects.count() - len(missing)}
    for n, recording in enumerate(missing, 1):
        try:
            recording_embed(recording=recording, encoder_version=encoder_version, encoder=encoder)
            counts["embedded"] += 1
        except InvalidInput:
            counts["failed"] += 1
        if on_progress:
            on_progress(recording, n, len(missing))
    return counts
