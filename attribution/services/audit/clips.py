"""The audit's settings, the 3-s clip embeddings of the catalogue and their calibration."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from attribution.audit import (
    AuditError,
    Calibration,
    CalibrationConfig,
    ClipSpec,
    calibrate,
    split_clips,
)
from attribution.models import ClipCalibration, ClipEmbedding
from catalog.audio.decoding import AudioDecodeError, load_mono
from catalog.encoders import AUDIO_ONLY_CARDS, AudioTextEncoder, EncoderError
from catalog.models import EncoderVersion, Recording
from catalog.retrieval.runtime import active_encoder_version, loaded_encoder
from config.exceptions import Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)

# One clip per encoder call: torchlibrosa's log-mel (top_db=80) clamps at the *batch's*
# maximum minus 80 dB, so a quiet clip embedded beside loud ones came out different (cosine
# 0.85 measured) from the same clip embedded alone. The default encoder now floors each item
# on its own (catalog/encoders/default_clap.py), but laion_clap's front end still floors per
# batch; clip by clip, a clip's vector depends on its audio only, whichever encoder is used.


EMBED_BATCH = 1
MAX_SEARCH_ROWS = 4096


class NotCalibrated(Conflict):
    code = "audit_not_calibrated"


class ClipsMissing(Conflict):
    code = "audit_clips_missing"


# -- settings ----------------------------------------------------------------------------------


def audit_clip_spec() -> ClipSpec:
    """The clip length and hop of settings.AUDIT_CLIP_SECONDS / AUDIT_CLIP_HOP_SECONDS."""
    try:
        return ClipSpec(
            clip_seconds=float(settings.AUDIT_CLIP_SECONDS),
            hop_seconds=float(settings.AUDIT_CLIP_HOP_SECONDS),
        )
    except (AuditError, TypeError, ValueError) as exc:
        raise InvalidInput(f"settings.AUDIT_CLIP_SECONDS / AUDIT_CLIP_HOP_SECONDS: {exc}") from exc


def audit_encoder_version(name: str | None = None) -> EncoderVersion:
    """The encoder version named "name@version" (or settings.AUDIT_ENCODER); the active one
    when neither names one."""
    name = (name if name is not None else settings.AUDIT_ENCODER or "").strip()
    if not name:
        return active_encoder_version()
    encoder_name, _, version = name.partition("@")
    found = EncoderVersion.objects.filter(name=encoder_name)
    if version:
        found = found.filter(version=version)
    found = list(found[:2])
    if len(found) > 1:
        raise NotFound(f"encoder {name!r} is ambiguous; give name@version in AUDIT_ENCODER")
    if not found:
        card = AUDIO_ONLY_CARDS.get(encoder_name)
        hint = f"; register it: manage.py register_encoder {encoder_name} {card}" if card else ""
        raise NotFound(f"encoder {name!r} not found{hint}")
    return found[0]


def _encoder(encoder_version: EncoderVersion) -> AudioTextEncoder:
    return loaded_encoder(encoder_version)


# -- clip embeddings ---------------------------------------------------------------------------


def _space(encoder_version: EncoderVersion, spec: ClipSpec) -> QuerySet[ClipEmbedding]:
    return ClipEmbedding.objects.filter(
        encoder=encoder_version, clip_seconds=spec.clip_seconds, hop_seconds=spec.hop_seconds
    )


def recordings_without_clips(
    *,
    encoder_version: EncoderVersion,
    spec: ClipSpec,
    recording_ids: Collection[int] | None = None,
) -> QuerySet[Recording]:
    recordings = Recording.objects.all()
    if recording_ids is not None:
        recordings = recordings.filter(pk__in=list(recording_ids))
    embedded = _space(encoder_version, spec).values("recording_id")
    return recordings.exclude(pk__in=embedded).order_by("pk")


def audio_clip_vectors(
    *, audio: np.ndarray, encoder: AudioTextEncoder, spec: ClipSpec
) -> tuple[list[float], np.ndarray]:
    """(clip starts, (n, 512) unit vectors) of mono audio at the encoder's sample rate."""
    try:
        clips = split_clips(audio, encoder.sample_rate, spec)
        stacked = np.stack([clip for _, clip in clips])
        vectors = np.concatenate(
            [
                encoder.embed_audio(stacked[start : start + EMBED_BATCH])
                for start in range(0, len(stacked), EMBED_BATCH)
            ]
        )
    except (AuditError, EncoderError) as exc:
        raise InvalidInput(str(exc)) from exc
    if vectors.shape != (len(clips), 512) or not np.all(np.isfinite(vectors)):
        raise InvalidInput(f"the encoder returned unusable vectors of shape {vectors.shape}")
    return [start for start, _ in clips], vectors


def recording_clips_embed(
    *,
    recording: Recording,
    encoder_version: EncoderVersion,
    spec: ClipSpec,
    encoder: AudioTextEncoder | None = None,
    rebuild: bool = False,
) -> int:
    """Embed one recording's clips (all or none); returns how many it has. A recording that
    already has clips for this encoder and spec is left alone unless `rebuild`."""
    existing = _space(encoder_version, spec).filter(recording=recording)
    if existing.exists() and not rebuild:
        return existing.count()
    encoder = encoder or _encoder(encoder_version)
    try:
        audio = load_mono(Path(recording.audio_file.path), sample_rate=encoder.sample_rate)
    except (AudioDecodeError, OSError, ValueError) as exc:
        raise InvalidInput(f"recording {recording.pk} cannot be decoded: {exc}") from exc
    try:
        starts, vectors = audio_clip_vectors(audio=audio, encoder=encoder, spec=spec)
    except InvalidInput as exc:
        raise InvalidInput(f"recording {recording.pk}: {exc.message}") from exc
    with transaction.atomic():
        existing.delete()
        ClipEmbedding.objects.bulk_create(
            ClipEmbedding(
                recording=recording,
                encoder=encoder_version,
                clip_seconds=spec.clip_seconds,
                hop_seconds=spec.hop_seconds,
                start_seconds=start,
                embedding=vector,
            )
            for start, vector in zip(starts, vectors, strict=True)
        )
    return len(starts)


def catalogue_clips_embed(
    *,
    encoder_version: EncoderVersion | None = None,
    spec: ClipSpec | None = None,
    recording_ids: Collection[int] | None = None,
    rebuild: bool = False,
    on_progress: Callable[[Recording, int, int, str], None] | None = None,
) -> dict:
    """Embed the clips of every recording (or of `recording_ids`) that has none yet for this
    encoder version and spec. Idempotent and resumable (one transaction per recording)."""
    encoder_version = encoder_version or audit_encoder_version()
    spec = spec or audit_clip_spec()
    encoder = _encoder(encoder_version)
    if rebuild:
        todo = Recording.objects.order_by("pk")
        if recording_ids is not None:
            todo = todo.filter(pk__in=list(recording_ids))
    else:
        todo = recordings_without_clips(
            encoder_version=encoder_version, spec=spec, recording_ids=recording_ids
        )
    todo = list(todo)
    scope = Recording.objects.count() if recording_ids is None else len(set(recording_ids))
    counts = {"embedded": 0, "clips": 0, "failed": 0, "already": scope - len(todo), "errors": {}}
    for n, recording in enumerate(todo, 1):
        try:
            clips = recording_clips_embed(
                recording=recording,
                encoder_version=encoder_version,
                spec=spec,
                encoder=encoder,
                rebuild=rebuild,
            )
            counts["embedded"] += 1
            counts["clips"] += clips
            outcome = f"{clips} clips"
        except InvalidInput as exc:
            counts["failed"] += 1
            counts["errors"][recording.pk] = exc.message
            outcome = f"failed: {exc.message}"
        if on_progress:
            on_progress(recording, n, len(todo), outcome)
    return counts


def _array(vector) -> np.ndarray:
    """A stored halfvec as float32 (pgvector gives a list or a HalfVector)."""
    return np.asarray(vector.to_list() if hasattr(vector, "to_list") else vector, np.float32)


# -- calibration -------------------------------------------------------------------------------


def clip_calibrate(
    *,
    encoder_version: EncoderVersion | None = None,
    spec: ClipSpec | None = None,
    config: CalibrationConfig | None = None,
) -> ClipCalibration:
    """Fit and store the thresholds of an encoder version's clip space (section 4.1)."""
    encoder_version = encoder_version or audit_encoder_version()
    spec = spec or audit_clip_spec()
    missing = recordings_without_clips(encoder_version=encoder_version, spec=spec).count()
    rows = list(_space(encoder_version, spec).values_list("recording_id", "embedding"))
    if not rows:
        raise ClipsMissing(
            f"encoder {encoder_version} has no {spec.label} clips: run `manage.py embed_clips`"
        )
    ids = np.array([rid for rid, _ in rows], dtype=np.int64)
    vectors = np.stack([_array(vector) for _, vector in rows])
    try:
        result: Calibration = calibrate(vectors, ids, config)
    except AuditError as exc:
        raise InvalidInput(f"cannot calibrate encoder {encoder_version}: {exc}") from exc
    return ClipCalibration.objects.create(
        encoder=encoder_version,
        clip_seconds=spec.clip_seconds,
        hop_seconds=spec.hop_seconds,
        clip_count=result.clip_count,
        recording_count=result.recording_count,
        sampled_clips=result.sampled_clips,
        top_n=result.top_n,
        mean=result.mean,
        std=result.std,
        random_mean=result.random_mean,
        random_std=result.random_std,
        thresholds=result.thresholds,
        histogram=result.histogram,
        config={
            **result.config,
            "recordings_without_clips": missing,
            "raw_thresholds": result.raw_thresholds,
            "z_thresholds": result.z_thresholds,
            "z_mean": result.z_mean,
            "z_std": result.z_std,
        },
    )


def current_calibration(*, encoder_version: EncoderVersion, spec: ClipSpec) -> ClipCalibration:
    """The newest calibration of this encoder version and spec; refused when there is none
    (a threshold from another embedding space would mean nothing here)."""
    calibration = (
        ClipCalibration.objects.filter(
            encoder=encoder_version, clip_seconds=spec.clip_seconds, hop_seconds=spec.hop_seconds
        )
        .order_by("-created_at", "-pk")
        .first()
    )
    if calibration is None:
        raise NotCalibrated(
            f"encoder {encoder_version} has no calibration for {spec.label} clips: run "
            "`manage.py calibrate_audit`"
        )
    return calibration
