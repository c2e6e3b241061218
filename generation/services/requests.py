"""Submitting a generation: validate, verify consent, record, queue.

Nothing is queued (and nothing charged) unless every input is valid and every reference is
permitted; a refusal still appends its verification to the attribution log, because the log
records every verification, not only the successful ones.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from attribution_log.models import AttributionRecord
from attribution_log.services import attribution_record_append
from catalog.audio.decoding import AudioDecodeError, file_sha256, probe_and_verify
from catalog.models import Distribution, Level, Recording
from config.exceptions import Conflict, Forbidden, InvalidInput
from generation.model.config import GeneratorConfig
from generation.models import GenerationReference, GenerationRequest, ModelVersion
from generation.selectors import references_not_embedded, servable_model_version
from generation.verification import ReferenceSpec, Verification, references_verify

AUDIO_LEVELS = {Level.AUDIO.value, Level.TEMPORAL.value}
DEFAULT_STRENGTH = 0.6
MAX_PROMPT_CHARS = 500
SHORTEST_WHY = "the shortest output is one similarity-audit clip"


class ReferencesRefused(Forbidden):
    code = "references_refused"


@dataclass(frozen=True)
class GenerationAsk:
    """Everything a music maker asks for, before validation."""

    references: list[ReferenceSpec]
    distribution: str
    seconds: float | None = None
    prompt: str = ""
    seed: int | None = None
    strength: float | None = None
    segment_start: float | None = None  # temporal level: the part of the upload to regenerate
    segment_end: float | None = None
    key: str = ""


def model_limits(model_version: ModelVersion) -> GeneratorConfig:
    return GeneratorConfig.from_dict(model_version.config)


def _finite(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{name} must be a finite number", details={name: repr(value)})
    return float(value)


def _validate_references(ask: GenerationAsk, config: GeneratorConfig) -> None:
    from generation.model import ROLES

    refs = ask.references
    if not refs:
        raise InvalidInput("a generation needs at least one reference recording")
    if len(refs) > config.dit.max_references:
        raise InvalidInput(f"at most {config.dit.max_references} references per generation")
    problems: dict[str, str] = {}
    durations = dict(
        Recording.objects.filter(pk__in=[r.recording_id for r in refs]).values_list(
            "pk", "duration_seconds"
        )
    )
    for n, ref in enumerate(refs):
        key = str(n)
        if ref.level not in Level.values:
            problems[key] = f"unknown level '{ref.level}'; expected one of {Level.values}"
        elif ref.role not in ROLES:
            problems[key] = f"unknown role '{ref.role}'; expected one of {list(ROLES)}"
        elif ref.level == Level.PARAMETER and ref.role == "style":
            problems[key] = "a parameter-level reference needs a parameter role, not 'style'"
        elif (
            isinstance(ref.weight, bool)
            or not isinstance(ref.weight, int | float)
            or not math.isfinite(ref.weight)
        ):
            problems[key] = f"weight {ref.weight!r} is not a finite number"
        elif ref.weight < 0:
            problems[key] = f"weight {ref.weight} is negative"
        elif (ref.segment_start is None) != (ref.segment_end is None):
            problems[key] = "a reference segment needs both start and end"
        elif ref.segment_start is not None:
            duration = durations.get(ref.recording_id)
            start, end = ref.segment_start, ref.segment_end
            if not (math.isfinite(start) and math.isfinite(end)) or not 0 <= start < end:
                problems[key] = f"segment {start}-{end} s is not a valid time range"
            elif duration is not None and end > duration + 1e-6:
                problems[key] = f"segment ends at {end} s; the recording is {duration:.3f} s long"
    if not problems and sum(ref.weight for ref in refs) <= 0:
        problems["weights"] = "all reference weights are zero"
    if problems:
        raise InvalidInput("invalid references", details=problems)


def _validate_upload(
    ask: GenerationAsk, upload: UploadedFile | None, config: GeneratorConfig
) -> tuple[Path | None, str, float | None]:
    """The upload checked by a full decode (path of a temp copy, sha256, duration)."""
    needs_upload = any(ref.level in AUDIO_LEVELS for ref in ask.references)
    temporal = any(ref.level == Level.TEMPORAL for ref in ask.references)
    if upload is None:
        if needs_upload:
            raise InvalidInput("audio- and temporal-level references transform an uploaded track")
        if ask.segment_start is not None or ask.strength is not None:
            raise InvalidInput("a segment or strength applies only to an uploaded track")
        return None, "", None
    if not needs_upload:
        raise InvalidInput(
            "an uploaded track is used only with audio- or temporal-level references"
        )
    suffix = Path(upload.name or "upload.wav").suffix.lower() or ".wav"
    with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    path = Path(handle.name)
    try:
        probe = probe_and_verify(path)
    except AudioDecodeError as exc:
        path.unlink(missing_ok=True)
        raise InvalidInput(f"the uploaded file is not decodable audio: {exc}") from exc
    duration = probe.duration_seconds
    problem = None
    if duration > config.dit.max_seconds + 1e-6:
        problem = f"the uploaded track is {duration:.3f} s; at most {config.dit.max_seconds} s"
    elif duration < settings.GENERATION_MIN_SECONDS:
        problem = (
            f"the uploaded track is {duration:.3f} s; at least "
            f"{settings.GENERATION_MIN_SECONDS:g} s ({SHORTEST_WHY})"
        )
    elif temporal and (ask.segment_start is None or ask.segment_end is None):
        problem = "a temporal-level request needs segment_start and segment_end in the upload"
    elif ask.segment_start is not None:
        start, end = (
            _finite(ask.segment_start, "segment_start"),
            _finite(ask.segment_end, "segment_end"),
        )
        if not 0 <= start < end <= duration + 1e-6:
            problem = f"segment {start}-{end} s lies outside the {duration:.3f}-s upload"
        elif end - start < 0.5:
            problem = "the segment to regenerate must be at least 0.5 s long"
    if problem is None and ask.strength is not None:
        strength = _finite(ask.strength, "strength")
        if not 0 < strength <= 1:
            problem = "strength must be in (0, 1]"
    if problem:
        path.unlink(missing_ok=True)
        raise InvalidInput(problem)
    return path, file_sha256(path), duration


def _seconds(ask: GenerationAsk, config: GeneratorConfig, upload_seconds: float | None) -> float:
    if upload_seconds is not None:
        return round(upload_seconds, 3)  # the output is as long as the track it transforms
    if ask.seconds is None:
        return float(config.dit.max_seconds)
    seconds = _finite(ask.seconds, "seconds")
    longest = config.sampler.max_output_seconds  # past the context: windowed continuation
    shortest = settings.GENERATION_MIN_SECONDS
    if not shortest <= seconds <= longest:
        raise InvalidInput(
            f"seconds must be between {shortest:g} and {longest:g} ({SHORTEST_WHY})",
            details={"seconds": seconds},
        )
    return seconds


def _fingerprint(ask: GenerationAsk, upload_sha256: str) -> str:
    asked = asdict(ask)
    asked.pop("key")
    asked["upload_sha256"] = upload_sha256
    return hashlib.sha256(json.dumps(asked, sort_keys=True, default=str).encode()).hexdigest()


def verification_payload(
    *,
    purpose: str,
    user_id: int,
    generation_ref: str,
    verification: Verification,
    model_version: ModelVersion,
    references: list[ReferenceSpec],
    extra: dict | None = None,
) -> dict:
    """The attribution-log record of one verification (at submission or at worker start)."""
    verdicts = verification.to_record()
    for verdict, ref in zip(verdicts, references, strict=True):
        verdict["recording"] = verdict.pop("recording_id")
        verdict.update(role=ref.role, weight=ref.weight)
        verdict["segment"] = (
            [ref.segment_start, ref.segment_end] if ref.segment_start is not None else None
        )
        verdict.pop("alternatives", None)
    return {
        "event": "verification",
        "purpose": purpose,
        "outcome": "permitted" if verification.permitted else "refused",
        "requested_by": user_id,
        "generation": generation_ref,
        "distribution": verification.distribution,
        "model_version": str(model_version),
        "model_checkpoint_sha256": model_version.checkpoint_sha256,
        "references": verdicts,
        "consent_version_ids": verification.consent_version_ids,
        "verified_at": timezone.now().isoformat(),
        **(extra or {}),
    }


def references_preview(
    *, user: AbstractBaseUser, references: list[ReferenceSpec], distribution: str
) -> Verification:
    """Verify without submitting (the UI's live feedback); logged like any verification."""
    ask = GenerationAsk(references=references, distribution=distribution)
    model_version = servable_model_version()
    _validate_distribution(distribution)
    _validate_references(ask, model_limits(model_version))
    verification = references_verify(references=references, distribution=distribution)
    attribution_record_append(
        kind=AttributionRecord.Kind.VERIFICATION,
        generation_ref="",
        payload=verification_payload(
            purpose="preview",
            user_id=user.pk,
            generation_ref="",
            verification=verification,
            model_version=model_version,
            references=references,
        ),
    )
    return verification


def _require_embeddings(ask: GenerationAsk, model_version: ModelVersion) -> None:
    """Refuse before anything is queued a reference the worker could not condition on (not yet
    embedded by the model's encoder), instead of failing the job later."""
    missing = references_not_embedded(
        references=[(r.recording_id, r.segment_start is not None) for r in ask.references],
        encoder_version=model_version.encoder,
    )
    if missing:
        raise Conflict(
            f"recordings {missing} have not been embedded by {model_version.encoder} yet, so "
            "the model cannot be conditioned on them; try again once the catalogue's embedding "
            "job has run (`python manage.py embed_catalogue`)",
            details={"recordings": missing},
        )


def _validate_distribution(distribution: str) -> None:
    if distribution not in Distribution.values:
        raise InvalidInput(
            f"unknown distribution '{distribution}'; expected one of {Distribution.values}"
        )


def generation_request_submit(
    *, user: AbstractBaseUser, ask: GenerationAsk, upload: UploadedFile | None = None
) -> tuple[GenerationRequest, bool]:
    """Verify and queue a generation. Returns (request, created); a repeated idempotency key
    with the same request returns the first one, with a different request is a conflict."""
    if ask.key and len(ask.key) > 100:
        raise InvalidInput("the idempotency key is at most 100 characters")
    _validate_distribution(ask.distribution)
    if len(ask.prompt) > MAX_PROMPT_CHARS:
        raise InvalidInput(f"the prompt is at most {MAX_PROMPT_CHARS} characters")
    if ask.seed is not None and not (isinstance(ask.seed, int) and 0 <= ask.seed < 2**63):
        raise InvalidInput("seed must be a non-negative integer")
    if ask.key and upload is None:  # with an upload, compare after hashing it below
        existing = GenerationRequest.objects.filter(requested_by_id=user.pk, key=ask.key).first()
        if existing is not None:
            return _same_ask(existing, ask, _fingerprint(ask, "")), False

    model_version = servable_model_version()
    config = model_limits(model_version)
    _validate_references(ask, config)
    _require_embeddings(ask, model_version)
    upload_path, upload_sha256, upload_seconds = _validate_upload(ask, upload, config)
    try:
        seconds = _seconds(ask, config, upload_seconds)
        fingerprint = _fingerprint(ask, upload_sha256)
        if ask.key:  # same key with the same upload content: the first request
            existing = GenerationRequest.objects.filter(requested_by_id=user.pk, key=ask.key)
            if existing.exists():
                return _same_ask(existing.get(), ask, fingerprint), False
        verification = references_verify(references=ask.references, distribution=ask.distribution)
        if not verification.permitted:
            record = attribution_record_append(
                kind=AttributionRecord.Kind.VERIFICATION,
                generation_ref="",
                payload=verification_payload(
                    purpose="submission",
                    user_id=user.pk,
                    generation_ref="",
                    verification=verification,
                    model_version=model_version,
                    references=ask.references,
                ),
            )
            raise ReferencesRefused(
                "some references may not be used as asked",
                details={
                    "references": verification.refusals(),
                    "attribution_record": record.record_hash,
                },
            )
        return _create(
            user, ask, model_version, verification, seconds, fingerprint, upload_path, upload
        )
    finally:
        if upload_path is not None:
            upload_path.unlink(missing_ok=True)


def _same_ask(
    existing: GenerationRequest, ask: GenerationAsk, fingerprint: str
) -> GenerationRequest:
    if fingerprint != existing.fingerprint:
        raise Conflict(
            f"idempotency key '{ask.key}' was already used for a different request",
            details={"generation": existing.ref},
        )
    return existing


def _create(
    user: AbstractBaseUser,
    ask: GenerationAsk,
    model_version: ModelVersion,
    verification: Verification,
    seconds: float,
    fingerprint: str,
    upload_path: Path | None,
    upload: UploadedFile | None,
) -> tuple[GenerationRequest, bool]:
    from generation import tasks

    try:
        with transaction.atomic():
            generation = GenerationRequest(
                key=ask.key,
                fingerprint=fingerprint,
                requested_by_id=user.pk,
                distribution=ask.distribution,
                seconds=seconds,
                prompt=ask.prompt.strip(),
                seed=ask.seed if ask.seed is not None else secrets.randbits(31),
                model_version=model_version,
                strength=(
                    (ask.strength if ask.strength is not None else DEFAULT_STRENGTH)
                    if upload_path is not None and ask.segment_start is None
                    else None
                ),
                segment_start=ask.segment_start,
                segment_end=ask.segment_end,
                verified_at=timezone.now(),
            )
            if upload_path is not None:
                generation.upload_sha256 = file_sha256(upload_path)
                with upload_path.open("rb") as handle:
                    generation.upload.save(
                        f"{generation.uid}{upload_path.suffix}", File(handle), save=False
                    )
            generation.save()
            GenerationReference.objects.bulk_create(
                GenerationReference(
                    request=generation,
                    position=n,
                    recording_id=ref.recording_id,
                    level=ref.level,
                    role=ref.role,
                    weight=float(ref.weight),
                    segment_start=ref.segment_start,
                    segment_end=ref.segment_end,
                    consent_version_ids=verdict.consent_version_ids,
                )
                for n, (ref, verdict) in enumerate(
                    zip(ask.references, verification.verdicts, strict=True)
                )
            )
            record = attribution_record_append(
                kind=AttributionRecord.Kind.VERIFICATION,
                generation_ref=generation.ref,
                payload=verification_payload(
                    purpose="submission",
                    user_id=user.pk,
                    generation_ref=generation.ref,
                    verification=verification,
                    model_version=model_version,
                    references=ask.references,
                    extra={
                        "seconds": seconds,
                        "prompt": generation.prompt,
                        "seed": generation.seed,
                        "upload_sha256": generation.upload_sha256,
                        "segment": [ask.segment_start, ask.segment_end]
                        if ask.segment_start is not None
                        else None,
                        "strength": generation.strength,
                    },
                ),
            )
            GenerationRequest.objects.filter(pk=generation.pk).update(
                verification_record_hash=record.record_hash
            )
            generation.verification_record_hash = record.record_hash
            transaction.on_commit(lambda: tasks.generation_run.delay(generation.pk))
    except IntegrityError:  # the same key submitted concurrently: the first one wins
        existing = GenerationRequest.objects.filter(requested_by_id=user.pk, key=ask.key).first()
        if existing is None or not ask.key:
            raise
        return _same_ask(existing, ask, fingerprint), False
    return generation, True
