"""Pieces every study shares: the model version under study, its generator, training
items and TDA target on the right device, and the errors a study reports as messages."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from attribution.services.training import tda_model_directory
from attribution.tda import (
    BaseLossCache,
    FisherInfo,
    Manifest,
    TDAConfig,
    TDAError,
    fisher_file_name,
    item_losses,
    load_or_compute_fisher,
)
from attribution.tda.platform_model import PlatformTarget, platform_manifest
from catalog.models import RecordingEmbedding
from config.exceptions import Conflict, DomainError
from generation.model import Generator, GeneratorError
from generation.models import ModelVersion
from generation.selectors import (
    active_model_version,
    model_version_get,
)
from generation.services.attribution_inputs import (
    model_version_generator,
    model_version_training_items,
)

Out = Callable[[str], None]


# The exceptions a study turns into a clear message (commands print it and exit non-zero).
STUDY_ERRORS = (DomainError, TDAError, GeneratorError, ValueError, OSError)


# Seed 000 Table 1's masking settings: (M_U when unlearning, M_L when measuring losses).
MASKS = {
    "both": (True, True),
    "mixed": (True, False),  # seed 000's choice
    "loss-only": (False, True),
    "none": (False, False),
}


def quiet(_: str) -> None:
    return None


# -- ---------------------------------------------------------------------------


def study_model_version(*, model_version_id: int | None) -> ModelVersion:
    """The given model version, or the active one."""
    if model_version_id is None:
        return active_model_version()
    return model_version_get(model_version_id=model_version_id)


def training_track_vectors(*, model_version: ModelVersion) -> dict[int, np.ndarray]:
    """CLAP track vectors (by the model's encoder) of every training recording; refused when
    some are missing, before anything heavy is loaded."""
    ids = [int(i) for i in model_version.training_recording_ids]
    if not ids:
        raise Conflict(f"model version {model_version} lists no training recordings")
    found = {
        int(rid): np.asarray(vector, dtype=np.float64)
        for rid, vector in RecordingEmbedding.objects.filter(
            encoder_id=model_version.encoder_id, recording_id__in=ids
        ).values_list("recording_id", "embedding")
    }
    missing = [rid for rid in ids if rid not in found]
    if missing:
        raise Conflict(
            f"model version {model_version}: {len(missing)} of its {len(ids)} training "
            f"recordings have no embeddings by encoder {model_version.encoder}; run "
            "`python manage.py embed_catalogue` first",
            details={"recordings": missing[:20]},
        )
    return found


@dataclass
class ModelContext:
    """theta0 of a model version as every study stage needs it."""

    model_version: ModelVersion
    generator: Generator  # the served generator (theta0, fused attention): sampling
    items: list[Any]
    manifest: Manifest
    target: PlatformTarget
    model: nn.Module  # theta0 prepared for TDA (plain attention, eval) on `device`
    device: torch.device
    out: Out = quiet
    fishers: dict[str, FisherInfo] = field(default_factory=dict)
    caches: dict[str, BaseLossCache] = field(default_factory=dict)

    @property
    def sha(self) -> str:
        return self.model_version.checkpoint_sha256

    @property
    def shared(self) -> Path:
        return tda_model_directory(self.sha)

    def fisher(self, config: TDAConfig) -> FisherInfo:
        """The shared Fisher for these settings: loaded when a job or study made it, else
        computed once and saved where the product's jobs look for it."""
        path = self.shared / fisher_file_name(self.sha, self.manifest.digest, config)
        if path.name not in self.fishers:
            existed = path.exists()
            started = time.monotonic()
            self.fishers[path.name] = load_or_compute_fisher(
                path, self.target, self.model, self.manifest, config, model_version=self.sha,
            )  # fmt: skip
            verb = "loaded" if existed else "computed"
            self.out(
                f"Fisher ({'M_L on' if config.loss_mask else 'M_L off'}) {verb} in "
                f"{time.monotonic() - started:.1f} s: {path}"
            )
        return self.fishers[path.name]

    def cache(self, config: TDAConfig, bank: int = 0) -> BaseLossCache:
        """theta0's losses for these loss settings and draw bank, shared like the product's."""
        key = json.dumps([config.loss_settings(), bank], sort_keys=True)
        if key not in self.caches:
            self.caches[key] = BaseLossCache(
                self.shared / "losses", target=self.target, model_version=self.sha,
                manifest=self.manifest, config=config, device=self.device, bank=bank,
            )  # fmt: skip
        return self.caches[key]

    def warm_cache(self, config: TDAConfig) -> float:
        """Compute (or read) theta0's losses of the whole manifest; seconds taken."""
        started = time.monotonic()
        self.cache(config).get(
            0,
            len(self.manifest),
            lambda a, b: item_losses(self.target, self.model, self.manifest, config, a, b),
        )
        return time.monotonic() - started

    def padded(self) -> list[bool]:
        """Whether each training item is shorter than the model's context (so padded)."""
        frames = self.generator.config.mel.frames_for(self.generator.config.dit.max_seconds)
        return [np.asarray(item.logmel).shape[1] < frames for item in self.items]

    def real_seconds(self, index: int) -> float:
        config = self.generator.config
        frames = np.asarray(self.items[index].logmel).shape[1]
        return min(config.dit.max_seconds, frames / config.mel.frames_per_second)


def model_context(*, model_version: ModelVersion, config: TDAConfig, out: Out) -> ModelContext:
    generator = model_version_generator(model_version_id=model_version.pk)
    items = model_version_training_items(model_version_id=model_version.pk)
    # one item per recording (its first window), so study indices are recordings: the
    # self-influence and comparison studies unlearn and rank training items themselves
    manifest = platform_manifest(items, generator.config, coverage="first")
    target = PlatformTarget(generator.config)
    device = config.resolve_device()
    model = target.prepare(copy.deepcopy(generator.model).to(device))
    out(
        f"Model version {model_version} (checkpoint {model_version.checkpoint_sha256[:12]}), "
        f"{len(items)} training items, device {device}"
    )
    return ModelContext(model_version, generator, items, manifest, target, model, device, out)


def study_generations_make(
    *,
    model_version: ModelVersion,
    username: str,
    count: int,
    references: int,
    distribution: str,
    seconds: float | None,
    seed: int,
    out: Out = quiet,
) -> list[str]:
    """New generations through the product's services (verified, recorded, charged), from
    random references permitted for song-level inference at `distribution`, run in this
    process (or by a worker that claimed them first: then waited for)."""
    from django.contrib.auth import get_user_model

    from catalog.models import Use
    from catalog.selectors import recordings_permitting
    from config.exceptions import InvalidInput, NotFound
    from generation.selectors import generation_get, servable_model_version
    from generation.services.requests import GenerationAsk, generation_request_submit
    from generation.services.running import generation_run
    from generation.verification import ReferenceSpec

    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"user {username!r} does not exist (--user)")
    if servable_model_version().pk != model_version.pk:
        raise InvalidInput(
            f"--generate uses the served model; model version {model_version} is not it"
        )
    generator = model_version_generator(model_version_id=model_version.pk)
    permitted = recordings_permitting(use=Use.SONG_INFERENCE, distribution=distribution)
    candidates = sorted(
        RecordingEmbedding.objects.filter(
            encoder_id=model_version.encoder_id, recording__in=permitted
        ).values_list("recording_id", flat=True)
    )
    if not candidates:
        raise Conflict("no embedded recording is permitted for song-level inference")
    role = "style" if "style" in generator.roles else generator.roles[0]
    chosen_count = min(references, len(candidates), generator.config.dit.max_references)
    rng = np.random.default_rng(seed)
    refs = []
    for n in range(count):
        chosen = [int(r) for r in rng.choice(candidates, size=chosen_count, replace=False)]
        ask = GenerationAsk(
            references=[ReferenceSpec(rid, "song", role, 1.0) for rid in chosen],
            distribution=distribution, seconds=seconds or generator.max_seconds,
            seed=int(rng.integers(2**31)),
        )  # fmt: skip
        generation, _ = generation_request_submit(user=user, ask=ask)
        generation = generation_run(generation_id=generation.pk)
        waited = time.monotonic()
        while generation.status in ("queued", "running") and time.monotonic() - waited < 600:
            time.sleep(1.0)  # a worker claimed it first: wait for it
            generation = generation_get(generation_id=generation.pk)
        if generation.status != "succeeded":
            raise Conflict(
                f"generation {generation.ref} did not succeed: "
                f"{generation.failure_reason or generation.status}"
            )
        out(f"generated {n + 1}/{count}: {generation.ref} from recordings {chosen}")
        refs.append(generation.ref)
    return refs
