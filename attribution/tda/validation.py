"""A retraining ground truth for attribution scores (plain torch, no Django).

Scores are only worth paying by if they predict what training without the credited recordings
does. The validation trains the generator on the full item set and on random subsets
(`subset_fraction` of the items, Wang et al.'s leave-subset-out check), generates queries with
the full model, and asks of every scoring method:

- **LDS** (linear datamodeling score, TRAK / D-TRAK): per query, the Spearman correlation over
  subsets S of the predicted sum_{i in S} tau_i with the measured -L(query; theta_S), the query
  loss measured exactly as the product measures it (the query's unlearning draws, M_U); the mean
  over queries with its standard error. The noise ceiling is the same correlation between two
  training seeds of the same subsets.
- **leave-top-k-out**: the query's loss rise when the method's top-k recordings are left out of
  training, against the rise from leaving out k random recordings, and against the seed-noise
  scale |L(query; theta_full, seed 1) - L(query; theta_full, seed 0)|.

Retrained models are cached under `directory/models/` by the digest of what they were trained
on (items, subset, seed, configs), so an interrupted validation resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attribution.tda.config import fingerprint
from attribution.tda.errors import TDAConfigError
from attribution.tda.evaluate import spearman
from attribution.tda.platform_model import PlatformTarget, manifest_digest
from attribution.tda.target import Example, draws, example_to
from generation.model import (
    DiffusionTransformer,
    GenerationSpec,
    Generator,
    GeneratorConfig,
    GeneratorTrainingItem,
    ReferenceCondition,
    TrainConfig,
    train_generator,
)

Progress = Callable[[str, int, int], None]
Scorer = Callable[["ValidationContext"], dict[str, np.ndarray]]  # name -> (Q, N)


@dataclass(frozen=True)
class ValidationConfig:
    subsets: int = 16
    subset_fraction: float = 0.5
    second_seed_subsets: int = 4  # subsets also trained with seed 1 (the noise ceiling)
    queries: int = 8
    leave_out: int = 5
    random_leave_outs: int = 4
    seed: int = 0
    query_draws: int = 64  # the query loss's (t, noise) draws (the product's unlearning draws)

    def __post_init__(self) -> None:
        if self.subsets < 2 or self.queries < 1 or self.random_leave_outs < 1:
            raise TDAConfigError("need subsets >= 2, queries >= 1 and random_leave_outs >= 1")
        if not 0 < self.subset_fraction < 1:
            raise TDAConfigError("subset_fraction must be in (0, 1)")
        if not 0 <= self.second_seed_subsets <= self.subsets:
            raise TDAConfigError("second_seed_subsets must be in [0, subsets]")
        if self.leave_out < 1:
            raise TDAConfigError("leave_out must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ValidationContext:
    """What scoring methods see: the full model, its items, the queries."""

    items: list[GeneratorTrainingItem]
    generator: Generator  # theta_full (seed 0)
    target: PlatformTarget
    queries: list[Example]
    query_keys: list[str]
    specs: list[GenerationSpec]
    logmels: list[np.ndarray]
    directory: Path
    extra: dict[str, Any] = field(default_factory=dict)


class Retrainer:
    """Trains (or loads) the generator on a subset of the items with a seed."""

    def __init__(
        self,
        directory: Path,
        items: Sequence[GeneratorTrainingItem],
        config: GeneratorConfig,
        train: TrainConfig,
    ) -> None:
        self.directory = Path(directory) / "models"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.items, self.train = list(items), train
        self.config = config if config.mel_mean is not None else _fitted(config, items)
        self.data_digest = manifest_digest(self.items)
        self.trained = 0
        self.seconds: list[float] = []

    def digest(self, keep: Sequence[int], seed: int) -> str:
        return fingerprint(
            [self.data_digest, sorted(int(i) for i in keep), seed, self.config.to_dict(),
             self.train.to_dict()]
        )  # fmt: skip

    def model(self, keep: Sequence[int], seed: int = 0) -> DiffusionTransformer:
        path = self.directory / f"{self.digest(keep, seed)[:24]}.pt"
        model = DiffusionTransformer(self.config.dit, self.config.mel.n_mels)
        if path.exists():
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval()
        if len(keep) < 2:
            raise TDAConfigError("a retrained model needs at least 2 items")
        started = time.monotonic()
        report = train_generator(
            [self.items[i] for i in sorted(keep)], self.config,
            TrainConfig.from_dict(self.train.to_dict() | {"seed": seed}), keep_stats=True,
        )  # fmt: skip
        self.seconds.append(time.monotonic() - started)
        self.trained += 1
        state = report.generator.model.cpu().state_dict()
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(state, tmp)
        tmp.replace(path)
        model.load_state_dict(state)
        return model.eval()


def _fitted(config: GeneratorConfig, items: Sequence[GeneratorTrainingItem]) -> GeneratorConfig:
    from generation.model.training import fit_stats

    return config.with_stats(*fit_stats(items))


def subset_plan(n: int, config: ValidationConfig) -> list[list[int]]:
    """`config.subsets` random subsets of round(fraction * n) item indices (seeded)."""
    rng = np.random.default_rng(config.seed)
    size = max(2, int(round(config.subset_fraction * n)))
    return [sorted(rng.choice(n, size, replace=False).tolist()) for _ in range(config.subsets)]


def query_losses(
    target: PlatformTarget,
    model: DiffusionTransformer,
    queries: Sequence[Example],
    keys: Sequence[str],
    config: ValidationConfig,
    *,
    seed: int = 0,
) -> np.ndarray:
    """L(query; model) of every query over its fixed draws, masked like the unlearning loss."""
    model = target.prepare(model)
    out = []
    with torch.no_grad():
        for query, key in zip(queries, keys, strict=True):
            q = example_to(target, query, torch.device("cpu"))
            t, noise = draws(seed, "unlearn", key, config.query_draws, q.x0.shape[1:])
            out.append(float(target.loss(model, q, t[None], noise[None], q.mask)[0]))
    return np.array(out)


def make_queries(
    generator: Generator, items: Sequence[GeneratorTrainingItem], config: ValidationConfig
) -> tuple[list[GenerationSpec], list[np.ndarray]]:
    """Generated outputs of the full model, each from one or two reference windows of random
    training items (as a maker's references), a random role and weight."""
    rng = np.random.default_rng(config.seed + 1)
    specs, logmels = [], []
    roles = generator.roles
    for q in range(config.queries):
        chosen = rng.choice(len(items), 1 + int(rng.random() < 0.5), replace=False)
        refs = []
        for index in chosen:
            windows = items[int(index)].windows
            embedding = windows[int(rng.integers(len(windows)))][1]
            refs.append(
                ReferenceCondition(
                    np.asarray(embedding, dtype=np.float32), roles[int(rng.integers(len(roles)))],
                    float(rng.uniform(0.7, 1.3)),
                )
            )  # fmt: skip
        spec = GenerationSpec(references=refs, seconds=generator.max_seconds, seed=1000 + q)
        specs.append(spec)
        logmels.append(generator.generate_mel(spec))
    return specs, logmels


def lds(scores: np.ndarray, subsets: Sequence[Sequence[int]], actual: np.ndarray) -> np.ndarray:
    """Per query, Spearman(sum_{i in S} scores[q, i], actual[q, S]) over subsets S.

    scores (Q, N); actual (Q, S_count) = -L(query; theta_S)."""
    scores = np.asarray(scores, dtype=np.float64)
    member = np.zeros((len(subsets), scores.shape[1]))
    for s, keep in enumerate(subsets):
        member[s, list(keep)] = 1.0
    predicted = scores @ member.T  # (Q, S)
    return np.array([spearman(predicted[q], actual[q]) for q in range(scores.shape[0])])


def summary(values: np.ndarray) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    se = float(finite.std(ddof=1) / np.sqrt(finite.size)) if finite.size > 1 else float("nan")
    return {
        "mean": float(finite.mean()) if finite.size else float("nan"),
        "se": se,
        "min": float(finite.min()) if finite.size else float("nan"),
        "max": float(finite.max()) if finite.size else float("nan"),
        "per_query": [float(v) for v in values],
    }


def validate(
    items: Sequence[GeneratorTrainingItem],
    config: GeneratorConfig,
    train: TrainConfig,
    validation: ValidationConfig,
    scorers: Sequence[Scorer],
    *,
    directory: Path,
    paid_method: str,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The whole validation; returns the report (also written to directory/report.json)."""
    started = time.monotonic()
    items = list(items)
    n = len(items)
    if n < 4:
        raise TDAConfigError(f"the validation needs at least 4 items, got {n}")
    directory = Path(directory)
    retrainer = Retrainer(directory, items, config, train)
    tick = progress or (lambda stage, done, total: None)
    everything = list(range(n))
    subsets = subset_plan(n, validation)
    plan_total = 2 + len(subsets) + validation.second_seed_subsets + validation.random_leave_outs
    done = [0]

    def trained(keep: Sequence[int], seed: int = 0) -> DiffusionTransformer:
        model = retrainer.model(keep, seed)
        done[0] += 1
        tick("retrain", done[0], plan_total + validation.queries)
        return model

    full = trained(everything, 0)
    generator = Generator(full, retrainer.config, device="cpu")
    target = PlatformTarget(retrainer.config)
    specs, logmels = make_queries(generator, items, validation)
    queries = [
        target.query_example(mel, target.spec_conditioning(spec))
        for mel, spec in zip(logmels, specs, strict=True)
    ]
    keys = [f"validation-query-{q}" for q in range(len(queries))]

    def losses(model: DiffusionTransformer) -> np.ndarray:
        return query_losses(target, model, queries, keys, validation)

    base = losses(full)
    seed_noise = np.abs(losses(trained(everything, 1)) - base)
    actual = np.stack([-losses(trained(keep, 0)) for keep in subsets], axis=1)  # (Q, S)
    second = [-losses(trained(keep, 1)) for keep in subsets[: validation.second_seed_subsets]]
    ceiling = None
    if len(second) >= 3:
        other = np.stack(second, axis=1)
        ceiling = np.array(
            [spearman(actual[q, : other.shape[1]], other[q]) for q in range(len(queries))]
        )

    context = ValidationContext(
        items=items, generator=generator, target=target, queries=queries, query_keys=keys,
        specs=specs, logmels=logmels, directory=directory,
    )  # fmt: skip
    scores: dict[str, np.ndarray] = {}
    extra: dict[str, Any] = {}
    for number, scorer in enumerate(scorers, 1):
        produced = scorer(context)
        tick("score", number, len(scorers))
        scores.update({k: v for k, v in produced.items() if not k.startswith("_")})
        extra.update({k[1:]: v for k, v in produced.items() if k.startswith("_")})
    if paid_method not in scores:
        raise TDAConfigError(f"the paid method {paid_method!r} was not scored")
    methods = {name: summary(lds(values, subsets, actual)) for name, values in scores.items()}

    rng = np.random.default_rng(validation.seed + 2)
    k = min(validation.leave_out, n - 2)
    random_rises = []
    for _ in range(validation.random_leave_outs):
        out = set(rng.choice(n, k, replace=False).tolist())
        random_rises.append(losses(trained([i for i in everything if i not in out])) - base)
    random_rises = np.stack(random_rises, axis=1)  # (Q, R)
    leave_out = []
    spread = random_rises.shape[1] > 1
    for q in range(len(queries)):
        top = set(np.argsort(-scores[paid_method][q], kind="stable")[:k].tolist())
        model = trained([i for i in everything if i not in top])
        rise = float(losses(model)[q] - base[q])
        beats = rise - float(random_rises[q].mean()) > float(seed_noise[q])
        leave_out.append({
            "query": q, "top": sorted(int(i) for i in top), "top_rise": rise,
            "random_rise_mean": float(random_rises[q].mean()),
            "random_rise_sd": float(random_rises[q].std(ddof=1)) if spread else 0.0,
            "seed_noise": float(seed_noise[q]), "beats_random_beyond_noise": bool(beats),
        })  # fmt: skip
    report = {
        "validation": validation.to_dict(),
        "items": n,
        "item_ids": [int(i.recording_id) for i in items],
        "generator_config": retrainer.config.to_dict(),
        "train_config": train.to_dict(),
        "subsets": subsets,
        "query_base_losses": [float(v) for v in base],
        "actual": actual.tolist(),  # (Q, S): -L(query; theta_S)
        "scores": {name: values.tolist() for name, values in scores.items()},  # (Q, N) each
        "seed_noise": [float(v) for v in seed_noise],
        "methods": methods,
        "noise_ceiling": summary(ceiling) if ceiling is not None else None,
        "paid_method": paid_method,
        "leave_out": {
            "k": k,
            "per_query": leave_out,
            "beats": int(sum(r["beats_random_beyond_noise"] for r in leave_out)),
            "queries": len(leave_out),
        },
        "extra": _jsonable(extra),
        "retrained": retrainer.trained,
        "retrain_seconds": summary(np.array(retrainer.seconds or [np.nan])),
        "seconds": time.monotonic() - started,
    }
    (directory / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True))
    return report


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.floating | np.integer):
        return value.item()
    return value
