"""A generation's output files: the provenance record, the signed WAV and the sampled log-mel,
written to a work directory and then stored with the generation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files import File
from django.utils import timezone

from catalog.models import Recording
from catalog.rights_signals import recordings_training_mining
from catalog.selectors import recordings_rights_holders
from generation import provenance
from generation.models import GenerationRequest


class OutputFailed(Exception):
    """The output could not be written or signed (the generation fails with this reason)."""


def _provenance(generation, verification, start_record) -> provenance.Provenance:
    recordings = Recording.objects.select_related("artist").in_bulk(
        [v.recording_id for v in verification.verdicts]
    )
    holders = recordings_rights_holders(recording_ids=recordings)
    training_mining = recordings_training_mining(recording_ids=recordings)
    references = []
    for verdict, ref in zip(
        verification.verdicts, generation.references.order_by("position"), strict=True
    ):
        recording = recordings[verdict.recording_id]
        references.append(
            provenance.ReferenceIngredient(
                recording_id=recording.pk,
                title=recording.title,
                artist=recording.artist.name,
                isrc=recording.isrc or "",
                rights_holders=sorted(name for name, _ in holders[recording.pk]),
                level=ref.level,
                role=ref.role,
                weight=ref.weight,
                consent_version_ids=verdict.consent_version_ids,
                media_type=f"audio/{recording.audio_format}",
                content_sha256=recording.content_sha256,
                training_mining=training_mining[recording.pk],
            )
        )
    return provenance.Provenance(
        generation_id=generation.ref,
        title=f"Generation {generation.ref[:8]}",
        created_at=timezone.now().isoformat(),
        model_version=str(generation.model_version),
        encoder_version=str(generation.model_version.encoder),
        distribution=generation.distribution,
        prompt=generation.prompt,
        attribution_record_hash=start_record.record_hash,
        references=references,
        upload=_upload_ingredient(generation),
    )


UPLOAD_MEDIA_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
                      ".opus": "audio/ogg", ".flac": "audio/flac"}  # fmt: skip


def _upload_ingredient(generation: GenerationRequest) -> provenance.UploadIngredient | None:
    """The maker's track the output transforms: the manifest's parent ingredient."""
    if not generation.upload:
        return None
    suffix = Path(generation.upload.name).suffix.lower()
    temporal = generation.segment_start is not None
    return provenance.UploadIngredient(
        title=f"Uploaded track of generation {generation.ref[:8]}",
        media_type=UPLOAD_MEDIA_TYPES.get(suffix, "application/octet-stream"),
        sha256=generation.upload_sha256,
        level="temporal" if temporal else "audio",
        segment=[generation.segment_start, generation.segment_end] if temporal else None,
        strength=generation.strength,
    )


def signing_credentials() -> provenance.SigningCredentials:
    """Production certificates when configured, else the project's development chain."""
    if settings.C2PA_CERTIFICATE_CHAIN:
        return provenance.credentials_from_files(
            Path(settings.C2PA_CERTIFICATE_CHAIN),
            Path(settings.C2PA_PRIVATE_KEY),
            Path(settings.C2PA_TRUST_ANCHORS) if settings.C2PA_TRUST_ANCHORS else None,
        )
    return provenance.development_credentials(Path(settings.C2PA_DEVELOPMENT_DIR))


def _work_directory() -> Path:
    """Where outputs are written before they are stored with their generation."""
    work = Path(settings.MEDIA_ROOT) / "generation" / "work"
    work.mkdir(parents=True, exist_ok=True)
    return work


def write_output(generation, verification, audio, sample_rate, start_record) -> Path:
    record = _provenance(generation, verification, start_record)
    work = _work_directory()
    plain, signed = work / f"{generation.ref}.plain.wav", work / f"{generation.ref}.wav"
    try:
        provenance.write_wav(plain, audio, sample_rate, record)
        provenance.sign_wav(plain, signed, record, signing_credentials())
    except provenance.ProvenanceError as exc:
        raise OutputFailed(f"the output could not be signed: {exc}") from exc
    finally:
        plain.unlink(missing_ok=True)
    return signed


def write_sample(generation: GenerationRequest, logmel: np.ndarray) -> Path:
    path = _work_directory() / f"{generation.ref}.mel.npy"
    np.save(path, np.asarray(logmel, dtype=np.float32))
    return path


def store_file(field, source: Path, name: str) -> None:
    if field:
        field.delete(save=False)
    with source.open("rb") as handle:
        field.save(name, File(handle), save=False)
