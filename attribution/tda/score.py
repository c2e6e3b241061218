"""Attribution scores (seed 000 Eq. 2): tau_i = L(z_i, theta_u) - L(z_i, theta0).

Common random numbers: item i's loss is averaged over `loss_timesteps` (t, noise) draws derived
from (seed, "loss:b", i), identical for theta0 and theta_u, in every process, shard and device;
b is the draw bank the query's key picks (`TDAConfig.loss_bank`), so an item's draw noise is
not one fixed bias shared by every query. The per-draw differences are kept: a score's
standard error is their standard deviation over sqrt(K) (conservative for the stratified
timesteps, whose draws are less variable than independent ones).
Batch composition is fixed too: items are batched on a global grid of `items_per_batch`, so a
chunk [start, stop) must start on that grid (`chunk_ranges` makes such chunks) and a chunked
run gives bit-for-bit the scores of a whole run.

theta0's losses depend only on the model version, the manifest, the loss settings and the
device kind, so `BaseLossCache` keeps them on disk (one file per grid batch, written
atomically): each query then pays a single pass over the manifest.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from attribution.tda.config import CODE_VERSION, TDAConfig, fingerprint
from attribution.tda.errors import NonFiniteLossError, StageMismatchError, TDAConfigError
from attribution.tda.target import AttributionTarget, Manifest, Progress, batch_draws, example_to


@dataclass
class ScoreChunk:
    start: int
    stop: int
    ids: list[Any]
    scores: np.ndarray  # (stop - start,) float64, tau_i
    base: np.ndarray  # L(z_i, theta0)
    unlearned: np.ndarray  # L(z_i, theta_u)
    # replicates whose row means are the scores, one array (n, R) per independent source of
    # draw noise: exact runs keep the per-draw differences; first-order runs the training
    # banks and the query groups (see uncertainty.py)
    replicates: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0
    cached_base: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


def check_chunk(start: int, stop: int, total: int, items_per_batch: int) -> None:
    if not (0 <= start < stop <= total):
        raise TDAConfigError(f"chunk [{start}, {stop}) is not inside [0, {total})")
    if start % items_per_batch:
        raise TDAConfigError(
            f"chunk start {start} is not a multiple of items_per_batch={items_per_batch} "
            "(batches sit on a global grid so shards reproduce a whole run exactly)"
        )


def chunk_ranges(total: int, chunk_items: int, items_per_batch: int) -> list[tuple[int, int]]:
    """[start, stop) ranges covering [0, total), each a multiple of items_per_batch long (the
    last one may be shorter): the shards of a Celery chord."""
    if total < 1 or chunk_items < 1:
        raise TDAConfigError("total and chunk_items must be >= 1")
    size = -(-chunk_items // items_per_batch) * items_per_batch
    return [(start, min(total, start + size)) for start in range(0, total, size)]


def device_kind(device: torch.device) -> str:
    """What must match for cached losses to be comparable bit for bit."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


@torch.no_grad()
def item_losses(
    target: AttributionTarget,
    model: nn.Module,
    manifest: Manifest,
    config: TDAConfig,
    start: int,
    stop: int,
    *,
    bank: int = 0,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """L(z_i, model) per draw, (stop - start, K) float64 (computed in the model's dtype), for
    i in [start, stop) with draw bank `bank`. Raises NonFiniteLossError on NaN/inf."""
    check_chunk(start, stop, len(manifest), config.items_per_batch)
    device = next(model.parameters()).device
    count = config.loss_timesteps
    out = np.empty((stop - start, count), dtype=np.float64)
    for first in range(start, stop, config.items_per_batch):
        indices = list(range(first, min(stop, first + config.items_per_batch)))
        batch = target.collate([target.example(manifest.items[i]) for i in indices])
        t, noise = batch_draws(config.seed, loss_purpose(bank), indices, count, batch.x0.shape[1:])
        batch = example_to(target, batch, device)
        mask = batch.mask if config.loss_mask else None
        losses = target.loss(model, batch, t.to(device), noise.to(device), mask, per_draw=True)
        values = losses.detach().double().cpu().numpy()
        if values.shape != (len(indices), count):
            raise TDAConfigError(
                f"loss returned shape {values.shape}, want ({len(indices)}, {count})"
            )
        if not np.all(np.isfinite(values)):
            bad = [indices[k] for k in np.flatnonzero(~np.isfinite(values).all(axis=1))]
            raise NonFiniteLossError(f"non-finite loss for items {bad[:5]}")
        out[first - start : first - start + len(indices)] = values
        if progress is not None:
            progress(len(indices))
    return out


def loss_purpose(bank: int) -> str:
    """The draw purpose of loss bank `bank` (also the first-order index's training draws)."""
    return f"loss:{bank}"


class BaseLossCache:
    """theta0's per-draw losses per grid batch, under `directory/<key>/`, keyed by target,
    model version, manifest digest, loss settings, draw bank, device kind and code version."""

    def __init__(
        self,
        directory: str | Path,
        *,
        target: AttributionTarget,
        model_version: str,
        manifest: Manifest,
        config: TDAConfig,
        device: torch.device,
        bank: int = 0,
    ) -> None:
        self.bank = bank
        self.meta = {
            "target": target.name,
            "model_version": model_version,
            "manifest_digest": manifest.digest,
            "items": len(manifest),
            "loss_settings": config.loss_settings(),
            "bank": bank,
            "device": device_kind(device),
            "code_version": CODE_VERSION,
        }
        self.key = fingerprint(self.meta)
        self.path = Path(directory) / self.key
        self.path.mkdir(parents=True, exist_ok=True)
        meta_file = self.path / "cache.json"
        if meta_file.exists():
            if json.loads(meta_file.read_text()) != self.meta:
                raise StageMismatchError(f"loss cache {self.path} was made with other settings")
        else:
            atomic_write(meta_file, json.dumps(self.meta, sort_keys=True, indent=1).encode())
        self.items_per_batch = config.items_per_batch
        self.total = len(manifest)
        self.hits = 0
        self.misses = 0

    def _file(self, block: int) -> Path:
        return self.path / f"block-{block:08d}.npy"

    def get(self, start: int, stop: int, compute: Callable[[int, int], np.ndarray]) -> np.ndarray:
        """Losses of [start, stop): cached blocks are read, missing ones computed and saved."""
        check_chunk(start, stop, self.total, self.items_per_batch)
        parts = []
        size = self.items_per_batch
        for first in range(start, stop, size):
            last = min(self.total, first + size)
            path = self._file(first // size)
            if path.exists():
                values = np.load(path)
                self.hits += 1
            else:
                values = compute(first, last)
                self.misses += 1
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                with open(tmp, "wb") as handle:
                    np.save(handle, values)
                os.replace(tmp, path)
            parts.append(values[: min(stop, last) - first])
        return np.concatenate(parts)


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def score_chunk(
    target: AttributionTarget,
    base_model: nn.Module,
    unlearned_model: nn.Module,
    manifest: Manifest,
    config: TDAConfig,
    start: int,
    stop: int,
    *,
    cache: BaseLossCache | None = None,
    bank: int = 0,
    progress: Progress | None = None,
) -> ScoreChunk:
    """tau_i for i in [start, stop): one pass with theta_u, and one with theta0 unless the
    cache has it, both with draw bank `cache.bank` (or `bank`). Raises NonFiniteLossError
    (nothing is returned) on any NaN loss."""
    started = time.monotonic()
    check_chunk(start, stop, len(manifest), config.items_per_batch)
    count = stop - start

    def ticker(stage: str) -> Callable[[int], None]:
        done = [0]

        def tick(items: int) -> None:
            done[0] += items
            if progress is not None:
                progress(stage, done[0], count)

        return tick

    if cache is not None:
        bank = cache.bank

    def base_losses(first: int, last: int) -> np.ndarray:
        return item_losses(
            target, base_model, manifest, config, first, last, bank=bank,
            progress=ticker("score_base"),
        )  # fmt: skip

    misses = cache.misses if cache is not None else 0
    base = cache.get(start, stop, base_losses) if cache is not None else base_losses(start, stop)
    unlearned = item_losses(
        target, unlearned_model, manifest, config, start, stop, bank=bank,
        progress=ticker("score"),
    )  # fmt: skip
    diffs = unlearned - base  # (n, K)
    return ScoreChunk(
        start=start,
        stop=stop,
        ids=list(manifest.ids[start:stop]),
        scores=diffs.mean(axis=1),
        base=base.mean(axis=1),
        unlearned=unlearned.mean(axis=1),
        replicates=[diffs],
        seconds=time.monotonic() - started,
        cached_base=cache is not None and cache.misses == misses,
    )


def concatenate(chunks: list[ScoreChunk], total: int) -> ScoreChunk:
    """Chunks (any order) covering [0, total) exactly once, as one."""
    chunks = sorted(chunks, key=lambda c: c.start)
    position = 0
    for chunk in chunks:
        if chunk.start != position:
            raise TDAConfigError(f"chunks leave a gap or overlap at item {position}")
        position = chunk.stop
    if position != total:
        raise TDAConfigError(f"chunks end at item {position}, the manifest has {total}")
    return ScoreChunk(
        start=0,
        stop=total,
        ids=[i for c in chunks for i in c.ids],
        scores=np.concatenate([c.scores for c in chunks]),
        base=np.concatenate([c.base for c in chunks]),
        unlearned=np.concatenate([c.unlearned for c in chunks]),
        replicates=[
            np.concatenate([c.replicates[f] for c in chunks])
            for f in range(min(len(c.replicates) for c in chunks))
        ],
        seconds=sum(c.seconds for c in chunks),
        cached_base=all(c.cached_base for c in chunks),
    )
