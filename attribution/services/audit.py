"""Corroborative similarity audit (seed 003) in the product: writes.

- Clip embeddings: every catalogue recording (training-set recordings are catalogue recordings)
  cut into `AUDIT_CLIP_SECONDS` clips every `AUDIT_CLIP_HOP_SECONDS`, embedded by an encoder
  version, one transaction per recording (`catalogue_clips_embed`, `manage.py embed_clips`).
- Calibration per encoder version and clip spec (`clip_calibrate`, `manage.py calibrate_audit`):
  seed 003 section 4.1's mean / +1 sigma / +2 sigma / random thresholds.
- One audit job per completed generation (`similarity_audit_request`, queued on commit as a
  Celery task on the `audit` queue when AUDIT_ON_GENERATION): the output's clips are searched
  against every catalogue clip in pgvector; the top-k recordings are stored with their best clip
  pair; a recording that was not a reference at or above AUDIT_FLAG_THRESHOLD flags the output,
  and with AUDIT_HOLD_PAYOUTS_ON_FLAG its rights-holder payouts are held in the ledger.

Bad input is refused with a reason: outputs shorter than one clip, an encoder version without
calibration, recordings without clips when AUDIT_EMBED_MISSING is off. An audit failure never
touches the generation; it is recorded on the audit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from attribution.audit import (
    AuditError,
    Calibration,
    CalibrationConfig,
    ClipHit,
    ClipSpec,
    RecordingMatch,
    best_matches,
    calibrate,
    flagged_matches,
    split_clips,
)
from attribution.audit.calibration import threshold_value
from attribution.models import ClipCalibration, ClipEmbedding, SimilarityAudit, SimilarityMatch
from catalog.audio.decoding import AudioDecodeError, load_mono
from catalog.encoders import AudioTextEncoder, EncoderError
from catalog.models import EncoderVersion, Recording
from catalog.retrieval.runtime import active_encoder_version, loaded_encoder
from catalog.retrieval.vector_search import nearest_rows
from config.exceptions import Conflict, DomainError, InvalidInput, NotFound
from jobs.lifecycle import JobKind, heartbeat, heartbeat_writer, job_claim

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
    if len(found) != 1:
        raise NotFound(
            f"encoder {name!r} " + ("is ambiguous; give name@version" if found else "not found")
        )
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


# -- search ------------------------------------------------------------------------------------


def clip_hits(
    *,
    vector: np.ndarray,
    output_start: float,
    encoder_version: EncoderVersion,
    spec: ClipSpec,
    k: int,
    recording_ids: Collection[int] | None = None,
    excluded_ids: Collection[int] = (),
) -> list[ClipHit]:
    """Nearest catalogue clips of one query clip, enough to cover its k best recordings (a
    recording has many clips, so k clips are rarely k recordings). `recording_ids` limits
    the search to those recordings; `excluded_ids` leaves recordings out (studies)."""
    rows = _space(encoder_version, spec)
    if recording_ids is not None:
        rows = rows.filter(recording_id__in=list(recording_ids))
    if excluded_ids:
        rows = rows.exclude(recording_id__in=list(excluded_ids))
    limit = max(8 * k, 40)
    while True:
        found = nearest_rows(
            rows=rows,
            query=vector,
            limit=limit,
            values=("recording_id", "start_seconds"),
            filtered=recording_ids is not None or bool(excluded_ids),
        )
        if len({r for r, _, _ in found}) >= k or len(found) < limit or limit >= MAX_SEARCH_ROWS:
            break
        limit *= 4
    return [ClipHit(output_start, int(r), float(s), float(sim)) for r, s, sim in found]


@dataclass(frozen=True)
class SearchResult:
    matches: list[RecordingMatch]  # top k over the searched recordings
    references: dict[int, RecordingMatch]  # each reference's best clip pair


def clips_search(
    *,
    starts: Sequence[float],
    vectors: np.ndarray,
    encoder_version: EncoderVersion,
    spec: ClipSpec,
    k: int,
    reference_ids: Collection[int] = (),
    training_ids: Collection[int] = (),
    recording_ids: Collection[int] | None = None,
) -> SearchResult:
    """All output clips against all catalogue clips (or those of `recording_ids`): the top-k
    recordings by best clip pair, and every reference's best pair."""
    hits: list[ClipHit] = []
    for start, vector in zip(starts, vectors, strict=True):
        hits += clip_hits(
            vector=vector,
            output_start=start,
            encoder_version=encoder_version,
            spec=spec,
            k=k,
            recording_ids=recording_ids,
        )
    reference_hits: list[ClipHit] = []
    for reference in dict.fromkeys(reference_ids):
        for start, vector in zip(starts, vectors, strict=True):
            reference_hits += clip_hits(
                vector=vector,
                output_start=start,
                encoder_version=encoder_version,
                spec=spec,
                k=1,
                recording_ids=[reference],
            )[:1]
    matches = best_matches(hits, k=k, reference_ids=reference_ids, training_ids=training_ids)
    references = best_matches(
        reference_hits, reference_ids=reference_ids, training_ids=training_ids
    )
    return SearchResult(matches, {m.recording_id: m for m in references})


def near_copies(
    *,
    audio: np.ndarray,
    sample_rate: int,
    reference_ids: Collection[int],
    training_ids: Collection[int],
    k: int = 5,
) -> list[RecordingMatch]:
    """The audit's flags for any audio (not a stored generation): non-reference recordings
    whose best clip pair reaches the calibrated threshold. Evaluations use it to count near
    copies of training recordings without creating audit records."""
    import librosa

    spec = audit_clip_spec()
    encoder_version = audit_encoder_version()
    calibration = current_calibration(encoder_version=encoder_version, spec=spec)
    try:
        threshold = threshold_value(calibration.thresholds, str(settings.AUDIT_FLAG_THRESHOLD))
    except AuditError as exc:
        raise InvalidInput(f"settings.AUDIT_FLAG_THRESHOLD: {exc}") from exc
    encoder = _encoder(encoder_version)
    if sample_rate != encoder.sample_rate:
        audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=encoder.sample_rate)
    starts, vectors = audio_clip_vectors(audio=audio, encoder=encoder, spec=spec)
    result = clips_search(
        starts=starts, vectors=vectors, encoder_version=encoder_version, spec=spec, k=k,
        reference_ids=reference_ids, training_ids=training_ids,
    )  # fmt: skip
    return flagged_matches(result.matches, threshold=threshold)


# -- the audit job -----------------------------------------------------------------------------


def similarity_audit_request(
    *, generation_ref: str, requested_by_id: int, model_version_id: int
) -> SimilarityAudit:
    """Create the audit of a completed generation (inside its completing transaction) and
    queue it once that commits. Idempotent per generation."""
    from attribution import tasks

    audit, created = SimilarityAudit.objects.get_or_create(
        generation_ref=generation_ref,
        defaults={
            "generation_requested_by": requested_by_id,
            "model_version_id": model_version_id,
        },
    )
    if created and settings.AUDIT_ON_GENERATION:
        # robust: a broker that is down leaves the audit queued (run it with `audit_generation`)
        # instead of raising after the generation committed
        transaction.on_commit(lambda: tasks.similarity_audit_run.delay(audit.pk), robust=True)
    return audit


def similarity_audit_retry(*, audit: SimilarityAudit) -> SimilarityAudit:
    """Queue a failed or finished audit again with today's settings and calibration."""
    from attribution import tasks

    if audit.status in (SimilarityAudit.Status.QUEUED, SimilarityAudit.Status.RUNNING):
        raise Conflict(f"the audit of {audit.generation_ref} is {audit.status}")
    if audit.payouts_held:
        raise Conflict("release the held payouts before auditing again")
    _reset(audit)
    transaction.on_commit(lambda: tasks.similarity_audit_run.delay(audit.pk))
    audit.refresh_from_db()
    return audit


def _reset(audit: SimilarityAudit) -> None:
    with transaction.atomic():
        SimilarityMatch.objects.filter(audit=audit).delete()
        SimilarityAudit.objects.filter(pk=audit.pk).update(
            status=SimilarityAudit.Status.QUEUED,
            stage="",
            failure_reason="",
            flagged=False,
            attempts=0,  # a new run: the lifecycle counts its tries afresh
            heartbeat_at=timezone.now(),  # queued now (the sweeper's clock)
            finished_at=None,
        )


def _claim(audit_id: int) -> SimilarityAudit | None:
    if not SimilarityAudit.objects.filter(pk=audit_id).exists():
        raise NotFound(f"similarity audit {audit_id} does not exist")
    return job_claim(SIMILARITY_AUDIT_JOB, audit_id)  # None: done or failed already


def _stage(audit: SimilarityAudit, stage: str) -> None:
    heartbeat(SIMILARITY_AUDIT_JOB, audit.pk, stage=stage)


def similarity_audit_fail(*, audit_id: int, reason: str) -> None:
    SimilarityAudit.objects.filter(pk=audit_id).exclude(status=SimilarityAudit.Status.DONE).update(
        status=SimilarityAudit.Status.FAILED,
        failure_reason=reason[:2000],
        flagged=False,
        finished_at=timezone.now(),
    )


def _queue_audit(audit_id: int) -> None:
    from attribution import tasks

    tasks.similarity_audit_run.delay(audit_id)


SIMILARITY_AUDIT_JOB = JobKind(
    name="similarity audit",
    model=SimilarityAudit,
    queued=SimilarityAudit.Status.QUEUED,
    running=SimilarityAudit.Status.RUNNING,
    failed=SimilarityAudit.Status.FAILED,
    finished=(SimilarityAudit.Status.DONE, SimilarityAudit.Status.FAILED),
    requeue=_queue_audit,
    fail=lambda pk, reason: similarity_audit_fail(audit_id=pk, reason=reason),
    # each stage writes a heartbeat, and embedding missing clips one per recording
    stale_after=timedelta(minutes=5),
)


def _coverage(
    *, encoder_version: EncoderVersion, spec: ClipSpec, must_have: Collection[int], audit
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
        _stage(audit, SimilarityAudit.Stage.CATALOGUE)
        beat = heartbeat_writer(SIMILARITY_AUDIT_JOB, audit.pk, interval=5.0)
        counts = catalogue_clips_embed(
            encoder_version=encoder_version,
            spec=spec,
            recording_ids=missing,
            on_progress=lambda *progress: beat(),
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


def similarity_audit_run(*, audit_id: int) -> SimilarityAudit:
    """Run one audit to the end (the task's and the command's path). Errors of the input or
    the setup fail the audit with their message; the generation is never touched."""
    from generation.services.attribution_inputs import generated_output

    audit = _claim(audit_id)
    if audit is None:
        return SimilarityAudit.objects.get(pk=audit_id)
    try:
        output = generated_output(generation_ref=audit.generation_ref)
        spec = audit_clip_spec()
        encoder_version = audit_encoder_version()
        calibration = current_calibration(encoder_version=encoder_version, spec=spec)
        threshold_name = str(settings.AUDIT_FLAG_THRESHOLD)
        try:
            threshold = threshold_value(calibration.thresholds, threshold_name)
        except AuditError as exc:
            raise InvalidInput(f"settings.AUDIT_FLAG_THRESHOLD: {exc}") from exc
        k = int(settings.AUDIT_TOP_K)
        if not 1 <= k <= 100:
            raise InvalidInput(f"settings.AUDIT_TOP_K must be 1..100, not {k}")
        encoder = _encoder(encoder_version)

        _stage(audit, SimilarityAudit.Stage.CLIPS)
        try:
            audio = load_mono(output.path, sample_rate=encoder.sample_rate)
        except (AudioDecodeError, OSError) as exc:
            raise InvalidInput(f"the output cannot be decoded: {exc}") from exc
        starts, vectors = audio_clip_vectors(audio=audio, encoder=encoder, spec=spec)
        coverage = _coverage(
            encoder_version=encoder_version,
            spec=spec,
            must_have={*output.reference_ids, *output.training_recording_ids},
            audit=audit,
        )
        _stage(audit, SimilarityAudit.Stage.SEARCH)
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
        _store(
            audit,
            output=output,
            spec=spec,
            encoder_version=encoder_version,
            calibration=calibration,
            threshold=(threshold_name, threshold),
            k=k,
            clips=len(starts),
            result=result,
            flags=flags,
            coverage=coverage,
        )
    except (DomainError, AuditError, EncoderError, OSError, ValueError) as exc:
        reason = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        similarity_audit_fail(audit_id=audit.pk, reason=reason)
        log.warning("similarity audit of %s failed: %s", audit.generation_ref, reason)
    audit.refresh_from_db()
    return audit


def _store(
    audit, *, output, spec, encoder_version, calibration, threshold, k, clips, result, flags,
    coverage,
) -> None:  # fmt: skip
    """The result, its matches and (if flagged and so configured) the payout hold, together."""
    from royalties.services import generation_payouts_hold

    threshold_name, threshold_value_ = threshold
    with transaction.atomic():
        SimilarityMatch.objects.filter(audit=audit).delete()
        SimilarityMatch.objects.bulk_create(
            SimilarityMatch(
                audit=audit,
                rank=rank,
                recording_id=m.recording_id,
                similarity=m.similarity,
                output_start_seconds=m.output_start,
                recording_start_seconds=m.recording_start,
                is_reference=m.is_reference,
                in_training_set=m.in_training_set,
                flagged=m.recording_id in flags,
            )
            for rank, m in enumerate(result.matches, 1)
        )
        held = False
        if flags and settings.AUDIT_HOLD_PAYOUTS_ON_FLAG:
            top = next(m for m in result.matches if m.recording_id in flags)
            try:
                held = bool(
                    generation_payouts_hold(
                        generation_ref=audit.generation_ref,
                        reason=(
                            f"similarity audit: recording {top.recording_id} (not a reference) "
                            f"at {top.similarity:.3f} >= {threshold_name} "
                            f"({threshold_value_:.3f})"
                        ),
                    )
                )
            except (NotFound, Conflict) as exc:  # never charged, or the fee was reversed
                coverage = {**coverage, "hold": exc.message}
        SimilarityAudit.objects.filter(pk=audit.pk).update(
            status=SimilarityAudit.Status.DONE,
            stage="",
            failure_reason="",
            encoder=encoder_version,
            calibration=calibration,
            clip_seconds=spec.clip_seconds,
            hop_seconds=spec.hop_seconds,
            top_k=k,
            threshold_name=threshold_name,
            threshold_value=threshold_value_,
            output_clip_count=clips,
            output_sha256=output.output_sha256,
            reference_ids=list(output.reference_ids),
            reference_scores={
                str(rid): {
                    "similarity": m.similarity,
                    "output_start_seconds": m.output_start,
                    "recording_start_seconds": m.recording_start,
                }
                for rid, m in result.references.items()
            },
            coverage=coverage,
            flagged=bool(flags),
            payouts_held=held,
            finished_at=timezone.now(),
        )
    log.info(
        "similarity audit of %s: %s", audit.generation_ref, "flagged" if flags else "not flagged"
    )


def similarity_audit_run_here(*, generation_ref: str, again: bool = False) -> SimilarityAudit:
    """Audit one generation in this process (the command line's path): creates the audit of
    an older generation that has none; `again` reruns a finished or failed one."""
    from generation.services.attribution_inputs import generated_output

    audit = SimilarityAudit.objects.filter(generation_ref=generation_ref).first()
    if audit is None:
        output = generated_output(generation_ref=generation_ref)
        audit, _ = SimilarityAudit.objects.get_or_create(
            generation_ref=output.generation_ref,
            defaults={
                "generation_requested_by": output.requested_by_id,
                "model_version_id": output.model_version_id,
            },
        )
    elif audit.status in (SimilarityAudit.Status.DONE, SimilarityAudit.Status.FAILED):
        if not again:
            return audit
        if audit.payouts_held:
            raise Conflict("release the held payouts before auditing again")
        _reset(audit)
    return similarity_audit_run(audit_id=audit.pk)


def similarity_audit_release(*, actor, generation_ref: str, reason: str) -> SimilarityAudit:
    """A reviewer found the flag unfounded: the held payouts are released (reversals)."""
    from royalties.services import generation_payouts_release

    audit = SimilarityAudit.objects.filter(generation_ref=generation_ref).first()
    if audit is None:
        raise NotFound(f"generation {generation_ref} has no similarity audit")
    if not audit.payouts_held:
        raise Conflict(f"the audit of {generation_ref} holds no payouts")
    with transaction.atomic():
        generation_payouts_release(actor=actor, generation_ref=generation_ref, reason=reason)
        SimilarityAudit.objects.filter(pk=audit.pk).update(payouts_held=False)
    audit.refresh_from_db()
    return audit
