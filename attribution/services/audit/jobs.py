"""The audit job of a completed generation: request, run, store, retry, release."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from attribution.audit import AuditError
from attribution.models import SimilarityAudit, SimilarityMatch
from attribution.services.audit.clips import audit_clip_spec, audit_encoder_version
from attribution.services.audit.signals import (
    AuditProgress,
    SignalResult,
    melody_section,
    pair_fields,
    signal_search,
)
from catalog.encoders import EncoderError
from config.exceptions import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from jobs.lifecycle import JobKind, heartbeat, heartbeat_writer, job_claim

log = logging.getLogger(__name__)


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
    finished=(SimilarityAudit.Status.DONE, SimilarityAudit.Status.FAILED),
    requeue=_queue_audit,
    fail=lambda pk, reason: similarity_audit_fail(audit_id=pk, reason=reason),
    # each stage writes a heartbeat, and embedding missing clips one per recording
    stale_after=timedelta(minutes=5),
)


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
        k = int(settings.AUDIT_TOP_K)
        if not 1 <= k <= 100:
            raise InvalidInput(f"settings.AUDIT_TOP_K must be 1..100, not {k}")
        progress = AuditProgress(
            stage=lambda stage: _stage(audit, stage),
            beat=heartbeat_writer(SIMILARITY_AUDIT_JOB, audit.pk, interval=5.0),
        )
        signal = signal_search(
            output=output,
            encoder_version=audit_encoder_version(),
            spec=spec,
            k=k,
            progress=progress,
        )
        melody = melody_section(output=output, spec=spec, k=k, progress=progress)
        _store(audit, output=output, spec=spec, k=k, signal=signal, melody=melody)
    except (DomainError, AuditError, EncoderError, OSError, ValueError) as exc:
        reason = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        similarity_audit_fail(audit_id=audit.pk, reason=reason)
        log.warning("similarity audit of %s failed: %s", audit.generation_ref, reason)
    audit.refresh_from_db()
    return audit


def _hold_reason(signal: SignalResult, melody: dict) -> str:
    name, value = signal.threshold
    if signal.flags:
        top = next(m for m in signal.result.matches if m.recording_id in signal.flags)
        return (
            f"similarity audit: recording {top.recording_id} (not a reference) "
            f"at {top.similarity:.3f} >= {name} ({value:.3f})"
        )
    top = next(m for m in melody["matches"] if m["flagged"])
    return (
        f"similarity audit, melody signal: recording {top['recording_id']} (not a reference) "
        f"at {top['similarity']:.3f} >= {melody['threshold_name']} "
        f"({melody['threshold_value']:.3f})"
    )


def _store(audit, *, output, spec, k, signal: SignalResult, melody: dict) -> None:
    """The result, its matches and (if flagged and so configured) the payout hold, together."""
    from royalties.services import generation_payouts_hold

    threshold_name, threshold_value_ = signal.threshold
    # the melody signal's flags are shown for review; they flag (and hold) the output only
    # when AUDIT_MELODY_HOLDS: on generated outputs they fired for 11% (docs/similarity-audit.md)
    flagged = bool(signal.flags) or bool(melody.get("flagged") and settings.AUDIT_MELODY_HOLDS)
    coverage = signal.coverage
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
                flagged=m.recording_id in signal.flags,
            )
            for rank, m in enumerate(signal.result.matches, 1)
        )
        held = False
        if flagged and settings.AUDIT_HOLD_PAYOUTS_ON_FLAG:
            try:
                held = bool(
                    generation_payouts_hold(
                        generation_ref=audit.generation_ref, reason=_hold_reason(signal, melody)
                    )
                )
            except (NotFound, Conflict) as exc:  # never charged, or the fee was reversed
                coverage = {**coverage, "hold": exc.message}
        SimilarityAudit.objects.filter(pk=audit.pk).update(
            status=SimilarityAudit.Status.DONE,
            stage="",
            failure_reason="",
            encoder=signal.encoder_version,
            calibration=signal.calibration,
            clip_seconds=spec.clip_seconds,
            hop_seconds=spec.hop_seconds,
            top_k=k,
            threshold_name=threshold_name,
            threshold_value=threshold_value_,
            output_clip_count=signal.clips,
            output_sha256=output.output_sha256,
            reference_ids=list(output.reference_ids),
            reference_scores={
                str(rid): pair_fields(m) for rid, m in signal.result.references.items()
            },
            melody=melody,
            coverage=coverage,
            flagged=flagged,
            payouts_held=held,
            finished_at=timezone.now(),
        )
    log.info(
        "similarity audit of %s: %s", audit.generation_ref, "flagged" if flagged else "not flagged"
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
    """A reviewer found the flag unfounded: the flag's hold is lifted, so the payouts it held
    are released (reversals), except what another reason in force (an open dispute) still
    holds: royalties asks the reasons which (`generation_holds_reconcile`)."""
    from royalties.services import generation_holds_reconcile

    if not getattr(actor, "is_staff", False):
        raise Forbidden("only staff can release held payouts")
    if not reason.strip():
        raise InvalidInput("a release needs a reason")
    audit = SimilarityAudit.objects.filter(generation_ref=generation_ref).first()
    if audit is None:
        raise NotFound(f"generation {generation_ref} has no similarity audit")
    if not audit.payouts_held:
        raise Conflict(f"the audit of {generation_ref} holds no payouts")
    with transaction.atomic():
        SimilarityAudit.objects.filter(pk=audit.pk).update(payouts_held=False)
        generation_holds_reconcile(generation_ref=generation_ref, reason=reason, actor=actor)
    audit.refresh_from_db()
    return audit
