"""One embedding's search of an output (the audit's main encoder, and the melody signal as
its second score): clips, coverage of the catalogue, search, flags at that encoder's own
calibrated threshold."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass

from django.conf import settings

from attribution.audit import AuditError, ClipSpec, flagged_matches
from attribution.audit.calibration import threshold_value
from attribution.models import SimilarityAudit
from attribution.services.audit.clips import (
    ClipsMissing,
    _encoder,
    audio_clip_vectors,
    audit_encoder_version,
    catalogue_clips_embed,
    current_calibration,
    recordings_without_clips,
)
from attribution.services.audit.search import clips_search
from catalog.audio.decoding import AudioDecodeError, load_mono
from catalog.encoders import EncoderError
from catalog.models import EncoderVersion, Recording
from config.exceptions import DomainError, InvalidInput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditProgress:
    """How a search reports where it is (the job's stage and heartbeat)."""

    stage: Callable[[str], None]
    beat: Callable[[], None]


def _coverage(
    *,
    encoder_version: EncoderVersion,
    spec: ClipSpec,
    must_have: Collection[int],
    progress: AuditProgress,
) -> dict:
    """Make sure the recordings the audit searches have clips (embedding them on demand when
    AUDIT_EMBED_MISSING); the references and training set must, the rest are named if not."""
    missing = list(
        recordings_without_clips(encoder_version=encoder_version, spec=spec).values_list(
            "pk", flat=True
        )
    )
    errors: dict = {}
    if missing and settings.AUDIT_EMBED_MISSING:
        progress.stage(SimilarityAudit.Stage.CATALOGUE)
        counts = catalogue_clips_embed(
            encoder_version=encoder_version,
            spec=spec,
            recording_ids=missing,
            on_progress=lambda *done: progress.beat(),
        )
        errors = counts["errors"]
        missing = sorted(errors)
    essential = sorted(set(missing) & set(must_have))
    if essential:
        raise ClipsMissing(
            f"recordings {essential} (references or training set) have no {spec.label} clips "
            f"for encoder {encoder_version}"
            + (": run `manage.py embed_clips`" if not settings.AUDIT_EMBED_MISSING else ""),
            details={"errors": {str(k): v for k, v in errors.items()}},
        )
    total = Recording.objects.count()
    return {
        "catalogue_recordings": total,
        "searched_recordings": total - len(missing),
        "unsearched_recordings": missing,
        "errors": {str(k): v for k, v in errors.items()},
    }


@dataclass(frozen=True)
class SignalResult:
    """One embedding's search of an output: its clips against the catalogue's, the top k and
    the recordings that reach that encoder's own calibrated threshold."""

    encoder_version: EncoderVersion
    calibration: object
    threshold: tuple[str, float]
    clips: int
    result: object
    flags: set[int]
    coverage: dict


def signal_search(
    *, output, encoder_version: EncoderVersion, spec: ClipSpec, k: int, progress: AuditProgress
) -> SignalResult:
    """Embed the output's clips with one encoder and search the catalogue's clips of it."""
    calibration = current_calibration(encoder_version=encoder_version, spec=spec)
    threshold_name = str(settings.AUDIT_FLAG_THRESHOLD)
    try:
        threshold = threshold_value(calibration.thresholds, threshold_name)
    except AuditError as exc:
        raise InvalidInput(f"settings.AUDIT_FLAG_THRESHOLD: {exc}") from exc
    encoder = _encoder(encoder_version)
    progress.stage(SimilarityAudit.Stage.CLIPS)
    try:
        audio = load_mono(output.path, sample_rate=encoder.sample_rate)
    except (AudioDecodeError, OSError) as exc:
        raise InvalidInput(f"the output cannot be decoded: {exc}") from exc
    starts, vectors = audio_clip_vectors(audio=audio, encoder=encoder, spec=spec)
    coverage = _coverage(
        encoder_version=encoder_version,
        spec=spec,
        must_have={*output.reference_ids, *output.training_recording_ids},
        progress=progress,
    )
    progress.stage(SimilarityAudit.Stage.SEARCH)
    result = clips_search(
        starts=starts,
        vectors=vectors,
        encoder_version=encoder_version,
        spec=spec,
        k=k,
        reference_ids=output.reference_ids,
        training_ids=output.training_recording_ids,
    )
    flags = {m.recording_id for m in flagged_matches(result.matches, threshold=threshold)}
    return SignalResult(
        encoder_version, calibration, (threshold_name, threshold), len(starts), result, flags,
        coverage,
    )  # fmt: skip


def melody_section(*, output, spec: ClipSpec, k: int, progress: AuditProgress) -> dict:
    """The second score (issue 18): the melody signal's own search, calibration and flags,
    with each reference's melody similarity (most telling for melody-role references). A
    failure of this signal is recorded here and leaves the main audit standing."""
    name = (settings.AUDIT_MELODY_ENCODER or "").strip()
    if not name:
        return {}
    try:
        signal = signal_search(
            output=output,
            encoder_version=audit_encoder_version(name),
            spec=spec,
            k=k,
            progress=progress,
        )
    except (DomainError, AuditError, EncoderError, OSError, ValueError) as exc:
        reason = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        log.warning("melody signal of %s unavailable: %s", output.generation_ref, reason)
        return {"encoder": name, "error": reason}
    roles = output.reference_roles
    return {
        "encoder": str(signal.encoder_version),
        "calibration_id": signal.calibration.pk,
        "threshold_name": signal.threshold[0],
        "threshold_value": signal.threshold[1],
        "output_clip_count": signal.clips,
        "flagged": bool(signal.flags),
        "matches": [
            {**match_fields(m), "rank": rank, "flagged": m.recording_id in signal.flags}
            for rank, m in enumerate(signal.result.matches, 1)
        ],
        "reference_scores": {
            str(rid): {**pair_fields(m), "roles": list(roles.get(rid, ()))}
            for rid, m in signal.result.references.items()
        },
        "coverage": signal.coverage,
    }


def pair_fields(match) -> dict:
    return {
        "similarity": match.similarity,
        "output_start_seconds": match.output_start,
        "recording_start_seconds": match.recording_start,
    }


def match_fields(match) -> dict:
    return {
        "recording_id": match.recording_id,
        **pair_fields(match),
        "is_reference": match.is_reference,
        "in_training_set": match.in_training_set,
    }
