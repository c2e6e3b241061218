"""What training-time attribution needs from generation: a model version's training items (in
manifest order, checked against the audio it was trained on) and a generation's sampled log-mel
with the conditioning it was sampled with.

The attribution app calls these; it never reads generation's tables itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from catalog.audio.decoding import file_sha256
from catalog.models import Recording
from config.exceptions import Conflict, NotFound
from generation.model import GenerationSpec, Generator, GeneratorConfig, GeneratorTrainingItem
from generation.models import GenerationRequest, ModelVersion
from generation.selectors import model_version_get
from generation.services.models import training_items
from generation.services.running import (
    GenerationFailed,
    generation_spec_for,
    loaded_generator,
    reference_specs_for,
)


@dataclass(frozen=True)
class GeneratedSample:
    generation_ref: str
    model_version_id: int
    logmel: np.ndarray  # (n_mels, frames), the sampler's output before rendering to audio
    spec: GenerationSpec  # references (embeddings, roles, weights), text, seconds


def model_version_generator(*, model_version_id: int) -> Generator:
    """The model version's generator (theta0), loaded once per process."""
    model_version = model_version_get(model_version_id=model_version_id)
    try:
        return loaded_generator(model_version)
    except GenerationFailed as exc:
        raise Conflict(str(exc)) from exc


def model_version_training_items(*, model_version_id: int) -> list[GeneratorTrainingItem]:
    """The items the model version was trained on, in its manifest's order. Refused when a
    recording's audio has changed since (its scores would describe other audio)."""
    model_version = model_version_get(model_version_id=model_version_id)
    return list(_training_items(model_version.pk, model_version.checkpoint_sha256))


@lru_cache(maxsize=2)
def _training_items(model_version_id: int, checkpoint_sha256: str) -> tuple:
    model_version = ModelVersion.objects.select_related("encoder").get(pk=model_version_id)
    entries = model_version.training_manifest.get("recordings", [])
    recordings = Recording.objects.select_related("artist").in_bulk([e["id"] for e in entries])
    missing = [e["id"] for e in entries if e["id"] not in recordings]
    if missing:
        raise Conflict(
            f"model {model_version} was trained on recordings that no longer exist",
            details={"recordings": missing},
        )
    changed = [
        e["id"] for e in entries if recordings[e["id"]].content_sha256 != e["content_sha256"]
    ]
    if changed:
        raise Conflict(
            f"the audio of recordings {changed} changed after model {model_version} was trained",
            details={"recordings": changed},
        )
    items = training_items(
        recordings=[recordings[e["id"]] for e in entries],
        encoder_version=model_version.encoder,
        config=GeneratorConfig.from_dict(model_version.config),
    )
    return tuple(items)


def generated_sample(*, generation_ref: str) -> GeneratedSample:
    """A succeeded generation's sampled log-mel and conditioning (checked against its hash)."""
    generation = (
        GenerationRequest.objects.select_related("model_version__encoder")
        .filter(uid=generation_ref)
        .first()
    )
    if generation is None:
        raise NotFound(f"generation {generation_ref} does not exist")
    if generation.status != GenerationRequest.Status.SUCCEEDED or not generation.sample:
        raise Conflict(f"generation {generation_ref} has no generated sample ({generation.status})")
    path = Path(generation.sample.path)
    if not path.is_file() or file_sha256(path) != generation.sample_sha256:
        raise Conflict(f"the stored sample of generation {generation_ref} is missing or changed")
    generator = model_version_generator(model_version_id=generation.model_version_id)
    try:
        spec = generation_spec_for(generation, reference_specs_for(generation), generator)
    except GenerationFailed as exc:
        raise Conflict(str(exc)) from exc
    return GeneratedSample(
        generation_ref=generation.ref,
        model_version_id=generation.model_version_id,
        logmel=np.load(path),
        spec=spec,
    )


@dataclass(frozen=True)
class GeneratedOutput:
    """What the similarity audit needs of a succeeded generation: its rendered audio, its
    references and the training set of the model version that made it."""

    generation_ref: str
    requested_by_id: int
    model_version_id: int
    path: Path
    output_sha256: str
    reference_ids: tuple[int, ...]
    training_recording_ids: tuple[int, ...]
    reference_roles: dict[int, tuple[str, ...]] = field(default_factory=dict)  # melody, mood ...


def generated_output(*, generation_ref: str) -> GeneratedOutput:
    """A succeeded generation's output file (checked against its hash) and references."""
    generation = (
        GenerationRequest.objects.select_related("model_version").filter(uid=generation_ref).first()
    )
    if generation is None:
        raise NotFound(f"generation {generation_ref} does not exist")
    if generation.status != GenerationRequest.Status.SUCCEEDED or not generation.output:
        raise Conflict(f"generation {generation_ref} has no output ({generation.status})")
    path = Path(generation.output.path)
    if not path.is_file() or file_sha256(path) != generation.output_sha256:
        raise Conflict(f"the stored output of generation {generation_ref} is missing or changed")
    return GeneratedOutput(
        generation_ref=generation.ref,
        requested_by_id=generation.requested_by_id,
        model_version_id=generation.model_version_id,
        path=path,
        output_sha256=generation.output_sha256,
        reference_ids=tuple(
            dict.fromkeys(
                generation.references.order_by("position").values_list("recording_id", flat=True)
            )
        ),
        training_recording_ids=tuple(generation.model_version.training_recording_ids),
        reference_roles=_roles(generation),
    )


def _roles(generation: GenerationRequest) -> dict[int, tuple[str, ...]]:
    roles: dict[int, tuple[str, ...]] = {}
    for recording_id, role in generation.references.order_by("position").values_list(
        "recording_id", "role"
    ):
        roles[recording_id] = (*roles.get(recording_id, ()), role)
    return roles


def succeeded_generation_refs(
    *, model_version_id: int | None = None, limit: int = 100
) -> list[str]:
    """The most recent succeeded generations (of one model version), newest first."""
    generations = GenerationRequest.objects.filter(status=GenerationRequest.Status.SUCCEEDED)
    if model_version_id is not None:
        generations = generations.filter(model_version_id=model_version_id)
    return [
        str(uid)
        for uid in generations.order_by("-finished_at").values_list("uid", flat=True)[:limit]
    ]
