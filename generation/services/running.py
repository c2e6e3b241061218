"""The worker side of a generation: verify again, generate, store with provenance, log, charge.

Idempotent: a finished generation is returned as it is; a generation whose worker was lost
(status running, no heartbeat for a while) is run again from the start with the same seed.
The output, the attribution record and what the completion event's receivers write (the fee,
the attribution jobs) commit in one transaction, so a generation is either
succeeded-logged-and-charged or not at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from attribution_log.models import AttributionRecord
from attribution_log.services import attribution_record_append
from catalog.audio.decoding import AudioDecodeError, file_sha256, load_mono
from config.exceptions import DomainError
from generation.candidates import CandidateChoice, draws_for, generate_best
from generation.events import CompletedReference, GenerationCompleted, generation_completed_publish
from generation.model import (
    GenerationSpec,
    Generator,
    GeneratorError,
    ReferenceCondition,
    load_generator,
)
from generation.models import GenerationRequest, ModelVersion
from generation.selectors import (
    generation_get,
    generation_modules,
    model_version_standing,
    reference_embedding,
)
from generation.services.outputs import OutputFailed, store_file, write_output, write_sample
from generation.services.requests import verification_payload
from generation.verification import ReferenceSpec, references_verify
from jobs.lifecycle import (
    TRANSIENT_ERRORS,
    JobKind,
    failure_reason,
    heartbeat_writer,
    job_claim,
)

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=2)  # a running generation without progress this long was lost


class GenerationFailed(Exception):
    """A reason to stop this generation for good (shown to the music maker)."""


@lru_cache(maxsize=2)
def _generator(checkpoint_path: str, checkpoint_sha256: str) -> Generator:
    return load_generator(Path(checkpoint_path))


def loaded_generator(model_version: ModelVersion) -> Generator:
    try:
        return _generator(model_version.checkpoint_path, model_version.checkpoint_sha256)
    except GeneratorError as exc:
        raise GenerationFailed(f"model {model_version} cannot be loaded: {exc}") from exc


def reference_specs_for(generation: GenerationRequest) -> list[ReferenceSpec]:
    return [
        ReferenceSpec(
            recording_id=ref.recording_id,
            level=ref.level,
            role=ref.role,
            weight=ref.weight,
            segment_start=ref.segment_start,
            segment_end=ref.segment_end,
        )
        for ref in generation.references.order_by("position")
    ]


def _queue_again(generation_id: int) -> None:
    from generation import tasks

    tasks.generation_run.delay(generation_id)


def _progress_writer(generation: GenerationRequest) -> Callable[[int, int], None]:
    write = heartbeat_writer(GENERATION_JOB, generation.pk)

    def on_progress(step: int, total: int) -> None:
        write(final=step >= total, progress_step=step, progress_total=total)

    return on_progress


def generation_fail(*, generation_id: int, reason: str) -> GenerationRequest:
    """End an unfinished generation with a reason a music maker can read, logged once; a
    finished one is left as it is."""
    with transaction.atomic():
        generation = GenerationRequest.objects.select_for_update().get(pk=generation_id)
        if generation.status in GENERATION_JOB.finished:
            return generation
        attribution_record_append(
            kind=AttributionRecord.Kind.GENERATION_FAILED,
            generation_ref=generation.ref,
            payload={
                "event": "generation_failed",
                "generation": generation.ref,
                "requested_by": generation.requested_by_id,
                "reason": reason,
                "attempt": generation.attempts,
                "failed_at": timezone.now().isoformat(),
            },
        )
        GenerationRequest.objects.filter(pk=generation.pk).update(
            status=GenerationRequest.Status.FAILED,
            failure_reason=reason[:2000],
            finished_at=timezone.now(),
        )
    generation.refresh_from_db()
    log.warning("generation %s failed: %s", generation.ref, reason)
    return generation


GENERATION_JOB = JobKind(
    name="generation",
    model=GenerationRequest,
    queued=GenerationRequest.Status.QUEUED,
    running=GenerationRequest.Status.RUNNING,
    finished=(GenerationRequest.Status.SUCCEEDED, GenerationRequest.Status.FAILED),
    requeue=_queue_again,
    fail=lambda pk, reason: generation_fail(generation_id=pk, reason=reason),
    stale_after=STALE_AFTER,
    claim_updates={"progress_step": 0},
)


def generation_run(*, generation_id: int) -> GenerationRequest:
    """Run one generation to its end: succeeded, or failed with a reason for any error but a
    transient database one (raised for the task to retry). Raises `JobBusy` while another
    live worker holds it."""
    generation = job_claim(GENERATION_JOB, generation_id)
    if generation is None:
        return generation_get(generation_id=generation_id)
    try:
        return _run(generation)
    except TRANSIENT_ERRORS:
        raise
    except (GenerationFailed, OutputFailed) as exc:
        reason = str(exc)
    except (GeneratorError, DomainError) as exc:
        reason = getattr(exc, "message", str(exc))
    except Exception as exc:  # a bug or a receiver's error: the maker must not wait forever
        log.exception("generation %s: unexpected error", generation.ref)
        reason = f"unexpected error ({failure_reason(exc)})"
    return generation_fail(generation_id=generation.pk, reason=reason)


def _run(generation: GenerationRequest) -> GenerationRequest:
    model_version = generation.model_version
    specs = reference_specs_for(generation)
    verification = references_verify(
        references=specs, distribution=generation.distribution, with_alternatives=False
    )
    standing = model_version_standing(model_version=model_version)
    start_record = attribution_record_append(
        kind=AttributionRecord.Kind.VERIFICATION,
        generation_ref=generation.ref,
        payload=verification_payload(
            purpose="worker_start",
            user_id=generation.requested_by_id,
            generation_ref=generation.ref,
            verification=verification,
            model_version=model_version,
            references=specs,
            extra={"model_withdrawn": standing.withdrawn, "attempt": generation.attempts},
        ),
    )
    if not verification.permitted:
        reasons = "; ".join(
            f"reference {v.position} (recording {v.recording_id}): {', '.join(v.reasons)}"
            for v in verification.verdicts
            if not v.permitted
        )
        raise GenerationFailed(f"consent changed since the request was verified: {reasons}")
    if standing.withdrawn:
        raise GenerationFailed(standing.problem)

    generator = loaded_generator(model_version)
    spec = generation_spec_for(generation, specs, generator)
    started = time.monotonic()
    choice = generate_best(
        generator, spec, count=settings.GENERATION_CANDIDATES,
        encoder=_candidate_encoder(generation, spec), progress=_progress_writer(generation),
    )  # fmt: skip
    elapsed = time.monotonic() - started

    output = write_output(
        generation, verification, choice.audio, generator.sample_rate, start_record
    )
    sample = write_sample(generation, choice.logmel)
    return _complete(generation, verification, output, sample, elapsed, choice)


def _candidate_encoder(generation: GenerationRequest, spec: GenerationSpec):
    """The CLAP encoder candidates are compared in (the references' own), when they are."""
    if draws_for(spec, settings.GENERATION_CANDIDATES) == 1:
        return None
    from catalog.retrieval.runtime import loaded_encoder

    return loaded_encoder(generation.model_version.encoder)


def generation_spec_for(
    generation: GenerationRequest, specs: list[ReferenceSpec], generator: Generator
) -> GenerationSpec:
    from catalog.retrieval.runtime import loaded_encoder

    encoder_version = generation.model_version.encoder
    references = [
        ReferenceCondition(
            embedding=reference_embedding(
                recording_id=s.recording_id,
                encoder_version=encoder_version,
                segment_start=s.segment_start,
                segment_end=s.segment_end,
            ),
            role=s.role,
            weight=s.weight,
        )
        for s in specs
    ]
    text = None
    if generation.prompt:
        text = loaded_encoder(encoder_version).embed_texts([generation.prompt])[0]
    init_audio, inpaint = None, None
    if generation.upload:
        if file_sha256(Path(generation.upload.path)) != generation.upload_sha256:
            raise GenerationFailed("the uploaded track changed on disk since it was verified")
        try:
            init_audio = load_mono(Path(generation.upload.path), sample_rate=generator.sample_rate)
        except AudioDecodeError as exc:
            raise GenerationFailed(f"the uploaded track cannot be decoded: {exc}") from exc
        if generation.segment_start is not None:
            inpaint = (generation.segment_start, generation.segment_end)
    return GenerationSpec(
        references=references,
        seconds=generation.seconds,
        seed=generation.seed,
        text_embedding=text,
        init_audio=init_audio,
        strength=generation.strength,
        inpaint=inpaint,
    )


def completed_event(generation: GenerationRequest) -> GenerationCompleted:
    model_version = generation.model_version
    return GenerationCompleted(
        generation_ref=generation.ref,
        requested_by_id=generation.requested_by_id,
        model_version_id=model_version.pk,
        model_checkpoint_sha256=model_version.checkpoint_sha256,
        verified_at=generation.verified_at,
        distribution=generation.distribution,
        references=tuple(
            CompletedReference(
                recording_id=ref.recording_id, level=ref.level, role=ref.role, weight=ref.weight
            )
            for ref in generation.references.order_by("position")
        ),
        training_recording_ids=tuple(model_version.training_recording_ids),
        modules=generation_modules(model_version=model_version, prompt=generation.prompt),
    )


def _complete(
    generation: GenerationRequest,
    verification,
    output: Path,
    sample: Path,
    elapsed: float,
    choice: CandidateChoice,
) -> GenerationRequest:
    digest = file_sha256(output)
    sample_digest = file_sha256(sample)
    model_version = generation.model_version
    with transaction.atomic():
        current = GenerationRequest.objects.select_for_update().get(pk=generation.pk)
        if current.status != GenerationRequest.Status.RUNNING or (
            current.attempts != generation.attempts
        ):  # the sweeper gave this attempt up and another took over: its result stands
            log.warning("generation %s: attempt %s superseded", generation.ref, generation.attempts)
            output.unlink(missing_ok=True)
            sample.unlink(missing_ok=True)
            return current
        store_file(generation.output, output, f"{generation.ref}.wav")
        store_file(generation.sample, sample, f"{generation.ref}.npy")
        record = attribution_record_append(
            kind=AttributionRecord.Kind.GENERATION,
            generation_ref=generation.ref,
            payload={
                "event": "generation",
                "generation": generation.ref,
                "requested_by": generation.requested_by_id,
                "distribution": generation.distribution,
                "references": [
                    {
                        "recording": ref.recording_id,
                        "level": ref.level,
                        "role": ref.role,
                        "weight": ref.weight,
                        "segment": [ref.segment_start, ref.segment_end]
                        if ref.segment_start is not None
                        else None,
                        "consent_version_ids": verdict.consent_version_ids,
                    }
                    for ref, verdict in zip(
                        generation.references.order_by("position"),
                        verification.verdicts,
                        strict=True,
                    )
                ],
                "consent_version_ids": verification.consent_version_ids,
                "model_version": str(model_version),
                "model_checkpoint_sha256": model_version.checkpoint_sha256,
                "encoder_version": str(model_version.encoder),
                "modules": [
                    {"label": m.label, "kind": m.kind, "external": m.external}
                    for m in generation_modules(
                        model_version=model_version, prompt=generation.prompt
                    )
                ],
                "seed": generation.seed,
                "candidates": choice.to_dict(),
                "seconds": generation.seconds,
                "prompt": generation.prompt,
                "upload_sha256": generation.upload_sha256,
                "output_sha256": digest,
                "sample_sha256": sample_digest,
                "verification_record_hash": generation.verification_record_hash,
                "started_at": generation.started_at.isoformat(),
                "finished_at": timezone.now().isoformat(),
                "generation_seconds": round(elapsed, 3),
            },
        )
        generation.status = GenerationRequest.Status.SUCCEEDED
        generation.output_sha256 = digest
        generation.sample_sha256 = sample_digest
        generation.generation_record_hash = record.record_hash
        generation.finished_at = timezone.now()
        total = GenerationRequest.objects.values_list("progress_total", flat=True).get(
            pk=generation.pk
        )
        generation.progress_step = generation.progress_total = total
        generation.save(
            update_fields=[
                "status",
                "output",
                "output_sha256",
                "sample",
                "sample_sha256",
                "generation_record_hash",
                "finished_at",
                "progress_step",
                "progress_total",
            ]
        )
        generation_completed_publish(completed_event(generation))
    output.unlink(missing_ok=True)
    sample.unlink(missing_ok=True)
    log.info("generation %s succeeded in %.1f s", generation.ref, elapsed)
    return generation
