"""`AttributionRun`: Fisher -> unlearn -> score as explicit, saved, resumable stages.

One run attributes one query (a generated sample) against one training manifest with one model
version and one config. Its directory holds:

    run.json                     the run's identity: target, config, model version, manifest
                                 digest, query digest, code version (a different one -> refused)
    fisher.pt                    unless `fisher_path` points at a shared one (one per model
                                 version; it serves every layer group and learning rate)
    unlearned.pt                 theta_u of the updated parameters + the settings that made it
    first_order.npz              the first-order method's scores with their replicates
                                 (the shared index of training gradients sits by the Fisher)
    scores/SSSSSSSS-EEEEEEEE.npz one file per scored chunk [start, end)
    regime.json                  the regime check: the query's own-loss rise under the update,
                                 exact vs first-order scores on a few probe windows
    result.json                  the complete scores with everything needed to show provenance

Each stage loads its file when present and checks it was made with the same settings, so a
retried task resumes where it stopped and never mixes stages of different runs. Chunks can be
scored by separate processes (a Celery chord): `AttributionRun.chunks()` lists them and
`result()` gathers them once all are there.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from attribution.tda.config import CODE_VERSION, TDAConfig, fingerprint
from attribution.tda.errors import IncompleteRunError, StageMismatchError
from attribution.tda.fast import (
    FastIndex,
    FirstOrderScores,
    fast_index_file_name,
    load_or_build_index,
)
from attribution.tda.fisher import FisherInfo, atomic_save, load_or_compute_fisher
from attribution.tda.normalise import minmax, softmax_shares, topk_shares
from attribution.tda.regime import RegimeCheck, regime_check
from attribution.tda.score import (
    BaseLossCache,
    ScoreChunk,
    atomic_write,
    check_chunk,
    chunk_ranges,
    concatenate,
    score_chunk,
)
from attribution.tda.target import (
    AttributionTarget,
    Example,
    Manifest,
    Progress,
    example_digest,
    group_names,
)
from attribution.tda.uncertainty import RecordingScores, by_recording, standard_errors
from attribution.tda.unlearn import apply_params, unlearn

UNLEARNED_FORMAT = 1


@dataclass
class AttributionResult:
    ids: list[Any]
    scores: np.ndarray  # tau_i, float64, manifest order
    base: np.ndarray
    unlearned: np.ndarray
    provenance: dict[str, Any]  # config, code version, model version, manifest digest, query...
    stages: dict[str, Any] = field(default_factory=dict)  # Fisher/unlearning stats, timings
    replicates: list[np.ndarray] = field(default_factory=list)  # see uncertainty.py
    segments: list[tuple[float, float]] = field(default_factory=list)  # of each window
    regime: dict[str, Any] = field(default_factory=dict)  # RegimeCheck.to_dict()

    @property
    def standard_errors(self) -> np.ndarray:
        """Standard error of every window's score (from its replicates)."""
        return standard_errors(self.replicates)

    def recordings(self) -> RecordingScores:
        """Scores per training recording: the mean and the max over its windows, with SEs."""
        return by_recording(self.ids, self.scores, self.replicates)

    def shares(self, kind: str = "topk", *, k: int = 10, temperature: float | str = "std"):
        if kind == "topk":
            return topk_shares(self.scores, k)
        if kind == "softmax":
            return softmax_shares(self.scores, temperature)
        if kind == "minmax":
            return minmax(self.scores)
        raise ValueError(f"unknown share kind {kind!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "ids": list(self.ids),
            "scores": [float(v) for v in self.scores],
            "base_losses": [float(v) for v in self.base],
            "unlearned_losses": [float(v) for v in self.unlearned],
            "standard_errors": [float(v) for v in self.standard_errors],
            "segments": [list(s) for s in self.segments],
            "recordings": self.recordings().to_dict(),
            "regime": self.regime,
            "provenance": self.provenance,
            "stages": self.stages,
        }


class AttributionRun:
    def __init__(
        self,
        directory: str | Path,
        *,
        target: AttributionTarget,
        model: nn.Module,
        manifest: Manifest,
        query: Example,
        config: TDAConfig,
        model_version: str,
        query_key: str | None = None,
        fisher_path: str | Path | None = None,
        index_path: str | Path | None = None,
        cache_dir: str | Path | None = None,
        progress: Progress | None = None,
    ) -> None:
        """`model` is theta0 (left untouched: the run works on a prepared copy on the config's
        device); `model_version` is its checkpoint sha256; `query_key` names the query's
        unlearning draws (default: the digest of its tensors)."""
        self.directory = Path(directory)
        self.target, self.manifest, self.config = target, manifest, config
        self.query = query
        self.model_version = model_version
        self.device = config.resolve_device()
        self.model = target.prepare(copy.deepcopy(model).to(self.device))
        self.names = group_names(target, self.model, config.layer_group)
        self.query_digest = example_digest(target, query)
        self.query_key = query_key or self.query_digest
        self.fisher_path = Path(fisher_path) if fisher_path else self.directory / "fisher.pt"
        self.index_path = (
            Path(index_path)
            if index_path
            else self.fisher_path.parent
            / fast_index_file_name(model_version, manifest.digest, config)
        )
        self.bank = config.loss_bank(self.query_key)
        self.cache = (
            BaseLossCache(
                cache_dir,
                target=target,
                model_version=model_version,
                manifest=manifest,
                config=config,
                device=self.device,
                bank=self.bank,
            )
            if cache_dir is not None and config.method == "exact"
            else None
        )
        self.progress = progress
        self._fisher: FisherInfo | None = None
        self._unlearned: nn.Module | None = None
        self._unlearn_stats: dict[str, Any] = {}
        self._index: FastIndex | None = None
        self._first_order: FirstOrderScores | None = None
        self._regime: RegimeCheck | None = None
        self.timings: dict[str, float] = {}
        self.identity = self._identity()
        self._claim()

    # -- identity --------------------------------------------------------------------------

    def _identity(self) -> dict[str, Any]:
        config = self.config.to_dict()
        config.pop("device")  # where it runs does not change what it computes
        return {
            "target": self.target.name,
            "config": config,
            "code_version": CODE_VERSION,
            "model_version": self.model_version,
            "manifest_digest": self.manifest.digest,
            "items": len(self.manifest),
            "query_digest": self.query_digest,
            "query_key": self.query_key,
        }

    def _claim(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / "run.json"
        if path.exists():
            saved = json.loads(path.read_text())
            if saved != self.identity:
                keys = sorted(k for k in self.identity if saved.get(k) != self.identity[k])
                raise StageMismatchError(
                    f"{self.directory} holds a run with other settings (differs in {keys})"
                )
        else:
            atomic_write(path, json.dumps(self.identity, sort_keys=True, indent=1).encode())

    def _tick(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)

    # -- stage 1: Fisher -------------------------------------------------------------------

    def fisher(self) -> FisherInfo:
        if self._fisher is None:
            started = time.monotonic()
            self._fisher = load_or_compute_fisher(
                self.fisher_path, self.target, self.model, self.manifest, self.config,
                model_version=self.model_version, progress=self._tick,
            )  # fmt: skip
            self.timings["fisher"] = time.monotonic() - started
        return self._fisher

    # -- stage 2: unlearning ---------------------------------------------------------------

    def _unlearn_identity(self, fisher: FisherInfo) -> dict[str, Any]:
        return {
            "settings": self.config.unlearn_settings(),
            "query_digest": self.query_digest,
            "query_key": self.query_key,
            "model_version": self.model_version,
            "manifest_digest": self.manifest.digest,
            "items": len(self.manifest),
            "fisher": fisher.key,
            "code_version": CODE_VERSION,
        }

    def unlearned_model(self) -> nn.Module:
        if self._unlearned is not None:
            return self._unlearned
        started = time.monotonic()
        fisher = self.fisher()
        identity = self._unlearn_identity(fisher)
        path = self.directory / "unlearned.pt"
        if path.exists():
            data = torch.load(path, map_location="cpu", weights_only=True)
            if data.get("format") != UNLEARNED_FORMAT or data.get("identity") != identity:
                raise StageMismatchError(f"{path} was made with other settings")
            self._unlearned = apply_params(self.model, data["values"])
            self._unlearn_stats = data["stats"]
            self._tick("unlearn", self.config.steps, self.config.steps)
        else:
            gradient = None
            if self.config.method == "first_order":
                gradient = self.first_order().gradient
            result = unlearn(
                self.target, self.model, self.query, fisher, self.config,
                n_items=len(self.manifest), query_key=self.query_key, gradient=gradient,
                progress=self._tick,
            )  # fmt: skip
            self._unlearn_stats = {
                "grad_norm": result.grad_norm,
                "update_norm": result.update_norm,
                "fisher_floor": asdict(result.floor),
                "seconds": result.seconds,
            }
            atomic_save(
                {"format": UNLEARNED_FORMAT, "identity": identity, "values": result.values,
                 "stats": self._unlearn_stats},
                path,
            )  # fmt: skip
            self._unlearned = result.model
        self.timings["unlearn"] = time.monotonic() - started
        return self._unlearned

    # -- first order: the shared index of training gradients, the query's scores -----------

    def index(self) -> FastIndex:
        """The model version's index of projected training gradients (built once, shared)."""
        if self._index is None:
            started = time.monotonic()
            self._index = load_or_build_index(
                self.index_path, self.target, self.model, self.manifest, self.fisher(),
                self.config, model_version=self.model_version, progress=self._tick,
            )  # fmt: skip
            self.timings["index"] = time.monotonic() - started
        return self._index

    def first_order(self) -> FirstOrderScores:
        """The first-order scores of the query with their replicates (saved, reloaded; the
        query's gradient is recomputed when theta_u is not saved yet)."""
        if self._first_order is not None:
            return self._first_order
        path = self.directory / "first_order.npz"
        identity = np.array(fingerprint(self.identity))
        if path.exists() and (self.directory / "unlearned.pt").exists():
            with np.load(path) as data:
                if str(data["identity"]) != str(identity):
                    raise StageMismatchError(f"{path} belongs to another run")
                self._first_order = FirstOrderScores(
                    scores=data["scores"], banks=data["banks"], groups=data["groups"],
                    gradient={},
                )  # fmt: skip
            return self._first_order
        index = self.index()
        started = time.monotonic()
        self._first_order = index.first_order(
            self.target, self.model, self.query, self.fisher(), self.config,
            query_key=self.query_key,
        )  # fmt: skip
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as handle:
            np.savez(handle, scores=self._first_order.scores, banks=self._first_order.banks,
                     groups=self._first_order.groups, identity=identity)  # fmt: skip
        tmp.replace(path)
        self.timings["first_order"] = time.monotonic() - started
        return self._first_order

    # -- the regime check ----------------------------------------------------------------

    def regime(self) -> RegimeCheck:
        """The query's own-loss rise under theta_u, and exact vs first-order scores on a few
        probe windows (saved)."""
        if self._regime is not None:
            return self._regime
        path = self.directory / "regime.json"
        if path.exists():
            data = json.loads(path.read_text())
            if data.get("identity") == fingerprint(self.identity):
                self._regime = RegimeCheck.from_dict(data["regime"])
                return self._regime
        started = time.monotonic()
        self._regime = regime_check(
            self.target, self.model, self.unlearned_model(), self.query, self.manifest,
            self.config, query_key=self.query_key, bank=self.bank,
        )  # fmt: skip
        atomic_write(
            path,
            json.dumps(
                {"identity": fingerprint(self.identity), "regime": self._regime.to_dict()},
                sort_keys=True, indent=1,
            ).encode(),
        )  # fmt: skip
        self.timings["regime"] = time.monotonic() - started
        return self._regime

    # -- stage 3: scores -------------------------------------------------------------------

    def chunks(self, chunk_items: int | None = None) -> list[tuple[int, int]]:
        size = chunk_items or len(self.manifest)
        return chunk_ranges(len(self.manifest), size, self.config.items_per_batch)

    def _chunk_file(self, start: int, stop: int) -> Path:
        return self.directory / "scores" / f"{start:08d}-{stop:08d}.npz"

    def has_chunk(self, start: int, stop: int) -> bool:
        """Whether items [start, stop) are scored and saved already."""
        return self._chunk_file(start, stop).exists()

    def score(self, start: int = 0, stop: int | None = None) -> ScoreChunk:
        """Scores of items [start, stop) (a grid-aligned chunk), saved; loaded when present."""
        stop = len(self.manifest) if stop is None else stop
        check_chunk(start, stop, len(self.manifest), self.config.items_per_batch)
        path = self._chunk_file(start, stop)
        if path.exists():
            return self._load_chunk(path, start, stop)
        started = time.monotonic()
        if self.config.method == "first_order":
            chunk = self._first_order_chunk(start, stop)
        else:
            chunk = score_chunk(
                self.target, self.model, self.unlearned_model(), self.manifest, self.config,
                start, stop, cache=self.cache, bank=self.bank, progress=self._tick,
            )  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        replicates = {f"replicates_{k}": r for k, r in enumerate(chunk.replicates)}
        with open(tmp, "wb") as handle:
            np.savez(handle, scores=chunk.scores, base=chunk.base, unlearned=chunk.unlearned,
                     identity=np.array(fingerprint(self.identity)), **replicates)  # fmt: skip
        tmp.replace(path)
        self.timings["score"] = self.timings.get("score", 0.0) + time.monotonic() - started
        return chunk

    def _first_order_chunk(self, start: int, stop: int) -> ScoreChunk:
        """First-order scores of [start, stop): read off the query's scores (no loss passes;
        base and unlearned losses are not measured, so they are NaN)."""
        scores = self.first_order()
        missing = np.full(stop - start, np.nan)
        self._tick("score", stop - start, stop - start)
        return ScoreChunk(
            start=start, stop=stop, ids=list(self.manifest.ids[start:stop]),
            scores=scores.scores[start:stop], base=missing, unlearned=missing.copy(),
            replicates=[r[start:stop] for r in scores.replicates],
        )  # fmt: skip

    def _load_chunk(self, path: Path, start: int, stop: int) -> ScoreChunk:
        with np.load(path) as data:
            if str(data["identity"]) != fingerprint(self.identity):
                raise StageMismatchError(f"{path} belongs to another run")
            replicates = sorted(k for k in data.files if k.startswith("replicates_"))
            return ScoreChunk(
                start=start, stop=stop, ids=list(self.manifest.ids[start:stop]),
                scores=data["scores"], base=data["base"], unlearned=data["unlearned"],
                replicates=[data[k] for k in replicates], meta={"loaded": True},
            )  # fmt: skip

    def result(self) -> AttributionResult:
        """The complete scores, from the saved chunks (any chunking that covers the manifest);
        IncompleteRunError while some items are unscored."""
        total = len(self.manifest)
        found = {}
        for path in sorted((self.directory / "scores").glob("[0-9]*-[0-9]*.npz")):
            start, _, stop = path.stem.partition("-")
            found.setdefault(int(start), []).append(int(stop))
        chunks, position = [], 0
        while position < total:
            if position not in found:
                raise IncompleteRunError(f"items from {position} of {total} are not scored yet")
            stop = max(found[position])
            chunks.append(self._load_chunk(self._chunk_file(position, stop), position, stop))
            position = stop
        whole = concatenate(chunks, total)
        fisher = self.fisher()
        if not self._unlearn_stats:
            self.unlearned_model()
        regime = self.regime() if self.config.regime_probe_items else None
        result = AttributionResult(
            ids=whole.ids,
            scores=whole.scores,
            base=whole.base,
            unlearned=whole.unlearned,
            provenance=self.identity
            | {"torch": torch.__version__, "device": str(self.device), "loss_bank": self.bank},
            stages={
                "fisher": fisher.stats(),
                "unlearn": self._unlearn_stats,
                "timings": dict(self.timings),
            },
            replicates=whole.replicates,
            segments=list(self.manifest.segments),
            regime=regime.to_dict() if regime else {},
        )
        atomic_write(
            self.directory / "result.json",
            json.dumps(result.to_dict(), sort_keys=True, indent=1).encode(),
        )
        return result

    def run(self, chunk_items: int | None = None) -> AttributionResult:
        """All stages in one process (each resumes from its saved file)."""
        self.fisher()
        if self.config.method == "first_order":
            self.first_order()
        self.unlearned_model()
        for start, stop in self.chunks(chunk_items):
            self.score(start, stop)
        return self.result()
