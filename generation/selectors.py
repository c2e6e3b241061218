"""Reads of the generation app: model versions and whether they may serve, requests,
and the reference embeddings a generation is conditioned on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from catalog.models import EncoderVersion, Recording, RecordingEmbedding, RecordingWindowEmbedding
from catalog.models import Use as CatalogUse
from catalog.selectors import recordings_permitting, recordings_rights_holders
from catalog.training_summary import training_content_summary
from config.exceptions import Conflict, NotFound
from generation.events import UsedModule
from generation.models import GenerationRequest, ModelVersion


class NoServableModel(Conflict):
    code = "no_servable_model"


def active_model_version() -> ModelVersion:
    version = ModelVersion.objects.select_related("encoder").filter(is_active=True).first()
    if version is None:
        raise NoServableModel(
            "no active generator: run `python manage.py train_generator` (or `--if-needed`)"
        )
    return version


def model_version_revoked_recordings(*, model_version: ModelVersion) -> list[int]:
    """Training recordings of this model whose effective training consent is gone today."""
    trained_on = model_version.training_recording_ids
    still = set(
        recordings_permitting(
            use=CatalogUse.TRAINING, queryset=Recording.objects.filter(pk__in=trained_on)
        ).values_list("pk", flat=True)
    )
    return sorted(set(trained_on) - still)


@dataclass(frozen=True)
class ModelStanding:
    model_version: ModelVersion
    revoked_recording_ids: list[int]
    withdrawn: bool  # revoked and the setting says to stop serving it

    @property
    def problem(self) -> str | None:
        if not self.withdrawn:
            return None
        return (
            f"model {self.model_version} was trained on recordings whose training consent has "
            f"since been revoked ({', '.join(map(str, self.revoked_recording_ids))}); it is not "
            "served until a retrained version exists (`python manage.py train_generator`)"
        )


def model_version_standing(*, model_version: ModelVersion) -> ModelStanding:
    revoked = model_version_revoked_recordings(model_version=model_version)
    refuse = bool(revoked) and settings.GENERATION_REFUSE_REVOKED_MODELS
    return ModelStanding(model_version, revoked, refuse)


def servable_model_version() -> ModelVersion:
    """The active model, unless consent withdrawn from its training set forbids serving it."""
    standing = model_version_standing(model_version=active_model_version())
    if standing.withdrawn:
        raise NoServableModel(standing.problem, details={"revoked": standing.revoked_recording_ids})
    return standing.model_version


def permitted_track_vectors(*, encoder_version: EncoderVersion) -> dict[int, np.ndarray]:
    """Track vectors of the recordings that permit song-level inference (what the quality
    measurements may condition on and compare with)."""
    permitted = recordings_permitting(use=CatalogUse.SONG_INFERENCE)
    return {
        rid: np.asarray(vector, dtype=np.float64)
        for rid, vector in RecordingEmbedding.objects.filter(
            encoder=encoder_version, recording__in=permitted
        ).values_list("recording_id", "embedding")
    }


def model_versions_evaluated() -> list[dict]:
    """Model versions with a stored `evaluate_generator` report, newest first: each with its
    report's rows and samples (file names under the version's quality folder)."""
    out = []
    for version in ModelVersion.objects.order_by("-created_at", "-pk"):
        report = (version.quality or {}).get("evaluation")
        if report:
            out.append({"model_version": version, "report": report})
    return out


def reference_embedding(
    *,
    recording_id: int,
    encoder_version: EncoderVersion,
    segment_start: float | None = None,
    segment_end: float | None = None,
) -> np.ndarray:
    """The CLAP vector a reference conditions with: the track vector, or the mean of the
    stored windows overlapping the chosen segment (re-normalised)."""
    if segment_start is None:
        track = RecordingEmbedding.objects.filter(
            recording_id=recording_id, encoder=encoder_version
        ).first()
        if track is None:
            raise _not_embedded(recording_id, encoder_version)
        return np.asarray(track.embedding, dtype=np.float32)
    windows = list(
        RecordingWindowEmbedding.objects.filter(recording_id=recording_id, encoder=encoder_version)
        .order_by("start_seconds")
        .values_list("start_seconds", "window_seconds", "embedding")
    )
    if not windows:
        raise _not_embedded(recording_id, encoder_version)
    overlapping = [
        np.asarray(vector, dtype=np.float64)
        for start, length, vector in windows
        if start < segment_end and start + length > segment_start
    ] or [np.asarray(windows[-1][2], dtype=np.float64)]
    mean = np.mean(overlapping, axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


def references_not_embedded(
    *, references: list[tuple[int, bool]], encoder_version: EncoderVersion
) -> list[int]:
    """Recordings among (recording id, has a segment) pairs whose conditioning vector cannot be
    read: no track vector (whole recording) or no stored windows (a segment). Unknown ids are
    left to the caller's own check."""
    ids = {rid for rid, _ in references}
    tracks = set(
        RecordingEmbedding.objects.filter(
            recording_id__in=ids, encoder=encoder_version
        ).values_list("recording_id", flat=True)
    )
    windows = set(
        RecordingWindowEmbedding.objects.filter(recording_id__in=ids, encoder=encoder_version)
        .values_list("recording_id", flat=True)
        .distinct()
    )
    known = set(Recording.objects.filter(pk__in=ids).values_list("pk", flat=True))
    missing = [
        rid
        for rid, segment in references
        if rid in known and rid not in (windows if segment else tracks)
    ]
    return sorted(set(missing))


def _not_embedded(recording_id: int, encoder_version: EncoderVersion) -> Conflict:
    return Conflict(
        f"recording {recording_id} has not been embedded by {encoder_version} yet; "
        "run `python manage.py embed_catalogue`",
        details={"recording": recording_id},
    )


def generations_visible_to(*, user: AbstractBaseUser) -> QuerySet[GenerationRequest]:
    base = GenerationRequest.objects.select_related("model_version").prefetch_related(
        "references__recording__artist"
    )
    if getattr(user, "is_staff", False):
        return base
    return base.filter(requested_by_id=user.pk)


def generation_get_for(*, user: AbstractBaseUser, uid) -> GenerationRequest:
    """The generation if `user` may see it; another user's answers exactly as an unknown id
    does (404), so that a caller cannot learn which ids exist."""
    generation = generations_visible_to(user=user).filter(uid=uid).first()
    if generation is None:
        raise NotFound(f"generation {uid} does not exist")
    return generation


def generation_get(*, generation_id: int) -> GenerationRequest:
    generation = (
        GenerationRequest.objects.select_related("model_version", "model_version__encoder")
        .filter(pk=generation_id)
        .first()
    )
    if generation is None:
        raise NotFound(f"generation {generation_id} does not exist")
    return generation


def model_version_get(*, model_version_id: int) -> ModelVersion:
    try:
        return ModelVersion.objects.select_related("encoder").get(pk=model_version_id)
    except ModelVersion.DoesNotExist:
        raise NotFound(f"model version {model_version_id} does not exist") from None


@dataclass(frozen=True)
class ReceiptReference:
    """One reference as a receipt shows it: what was used, how, and who it pays."""

    recording_id: int
    title: str
    artist: str
    level: str
    role: str
    weight: float
    segment: tuple[float, float] | None
    holders: list[tuple[str, int]]  # (name, basis points)


def generation_receipt_references(*, generation: GenerationRequest) -> list[ReceiptReference]:
    references = list(generation.references.select_related("recording__artist"))
    holders = recordings_rights_holders(recording_ids=[r.recording_id for r in references])
    return [
        ReceiptReference(
            recording_id=ref.recording_id,
            title=ref.recording.title,
            artist=ref.recording.artist.name,
            level=ref.level,
            role=ref.role,
            weight=ref.weight,
            segment=(ref.segment_start, ref.segment_end) if ref.segment_start is not None else None,
            holders=holders.get(ref.recording_id, []),
        )
        for ref in sorted(references, key=lambda r: r.position)
    ]


def generation_modules(*, model_version: ModelVersion, prompt: str = "") -> tuple[UsedModule, ...]:
    """The learned modules a generation on `model_version` uses: the generator; the encoder
    that embedded its references (and prompt), trained on its own manifest or, without one,
    outside the platform; and, when there is a prompt, the encoder's pretrained text model."""
    encoder = model_version.encoder
    manifest = encoder.training_manifest or {}
    modules = [
        UsedModule(
            f"generator {model_version}", "generator", tuple(model_version.training_recording_ids)
        ),
        UsedModule(
            f"encoder {encoder}",
            "conditioning_encoder",
            tuple(r["id"] for r in manifest.get("recordings", [])),
            external="recordings" not in manifest,
        ),
    ]
    # a trained encoder's manifest names the text model its text tower was built on
    text_model = manifest.get("model_config", {}).get("text_model") or (encoder.config or {}).get(
        "text_model"
    )
    if prompt.strip() and text_model:
        modules.append(UsedModule(f"text model {text_model}", "text_tower", (), external=True))
    return tuple(modules)


def model_version_training_summary(*, model_version: ModelVersion) -> dict:
    """The generator's training-content summary (`catalog.training_summary`), naming the
    conditioning encoder whose own summary covers what that module learned."""
    encoder = model_version.encoder
    return training_content_summary(
        kind="generator",
        module={
            "id": model_version.pk,
            "name": model_version.name,
            "version": model_version.version,
            "label": str(model_version),
            "checkpoint_sha256": model_version.checkpoint_sha256,
            "active": model_version.is_active,
            "conditioning_encoder": {"id": encoder.pk, "label": str(encoder)},
        },
        manifest=model_version.training_manifest or {},
        trained_at=model_version.created_at,
    )


def model_versions_all() -> list[ModelVersion]:
    return list(ModelVersion.objects.select_related("encoder").order_by("-created_at", "-pk"))
