"""Train-to-Train (seed 000 section 3.2, `manage.py tda_self_influence`): unlearn training
items chosen by k-means on their CLAP track vectors, score every training item, and report per
grid setting the target's rank R(z_tar), CLAP_topk / CLAP_botk and the Frechet distance of
samples generated before vs after unlearning (Table 1)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from itertools import product
from typing import Any

import numpy as np

from attribution.services.training import tda_config
from attribution.studies.context import (
    MASKS,
    ModelContext,
    Out,
    model_context,
    quiet,
    study_model_version,
    training_track_vectors,
)
from attribution.studies.reports import StudyReport, report_directory, write_csv, write_json
from attribution.tda import (
    LAYER_GROUPS,
    TDAConfig,
    baselines,
    clap_top_bottom,
    plots,
    regime_check,
    score_chunk,
    spearman,
    target_rank,
    unlearn,
)
from catalog.encoders import AudioTextEncoder
from catalog.retrieval.runtime import loaded_encoder
from config.exceptions import InvalidInput
from generation.candidates import embed_output
from generation.model import Generator

# -- Train-to-Train: self-influence grid (seed 000 3.2) -------------------------------------------

DEFAULT_LEARNING_RATES = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


@dataclass(frozen=True)
class GridSetting:
    """One row of the grid: the unlearning settings that vary in seed 000 Table 1."""

    learning_rate: float
    steps: int
    layer_group: str
    unlearn_mask: bool
    loss_mask: bool
    varied: str = "base"  # which factor this row varies around the base ("base" for none)

    @property
    def masks(self) -> str:
        return next(k for k, v in MASKS.items() if v == (self.unlearn_mask, self.loss_mask))

    @property
    def label(self) -> str:
        return f"lr={self.learning_rate:g} steps={self.steps} {self.layer_group} {self.masks}"

    def config(self, base: TDAConfig, **overrides: Any) -> TDAConfig:
        return replace(
            base, learning_rate=self.learning_rate, steps=self.steps,
            layer_group=self.layer_group, unlearn_mask=self.unlearn_mask,
            loss_mask=self.loss_mask, **overrides,
        )  # fmt: skip


def study_grid(
    base: TDAConfig,
    *,
    learning_rates: Sequence[float] | None = None,
    steps: Sequence[int] | None = None,
    layer_groups: Sequence[str] | None = None,
    masks: Sequence[str] | None = None,
    full: bool = False,
) -> list[GridSetting]:
    """The settings to run. Default: one factor at a time around the platform's config (its
    own row, then each other value of one factor with the rest at the platform's values);
    `full`: every combination. Unset factors: lr / 10, lr, lr * 10; steps 1, 2, 4; every layer
    group; every masking.

    The default learning rates span seed 000's search, 1e-7..1e-1 by decades (with the
    platform's own): at the small end the update is linear (scores scale with lr, ranks do
    not change), at the large end the query's own loss rises by orders of magnitude."""
    lr = base.learning_rate
    lrs = list(learning_rates or sorted({lr, *DEFAULT_LEARNING_RATES}))
    step_values = list(steps or (1, 2, 4))
    groups = list(layer_groups or LAYER_GROUPS)
    mask_names = list(masks or MASKS)
    if any(not (isinstance(v, int | float) and 0 < v < float("inf")) for v in lrs):
        raise InvalidInput("learning rates must be finite numbers > 0")
    if any(not (isinstance(v, int) and v >= 1) for v in step_values):
        raise InvalidInput("steps must be integers >= 1")
    unknown = [g for g in groups if g not in LAYER_GROUPS] + [
        m for m in mask_names if m not in MASKS
    ]
    if unknown:
        raise InvalidInput(
            f"unknown grid values {unknown}; layer groups: {list(LAYER_GROUPS)}, "
            f"masks: {list(MASKS)}"
        )
    if full:
        return [
            GridSetting(lr, s, g, *MASKS[m], varied="grid")
            for lr, s, g, m in product(lrs, step_values, groups, mask_names)
        ]
    origin = GridSetting(
        base.learning_rate, base.steps, base.layer_group, base.unlearn_mask, base.loss_mask
    )
    rows = [origin]
    variations: list[tuple[str, Iterable[dict[str, Any]]]] = [
        ("learning_rate", ({"learning_rate": float(v)} for v in lrs)),
        ("steps", ({"steps": int(v)} for v in step_values)),
        ("layer_group", ({"layer_group": v} for v in groups)),
        (
            "masks",
            (dict(zip(("unlearn_mask", "loss_mask"), MASKS[m], strict=True)) for m in mask_names),
        ),  # fmt: skip
    ]
    seen = {replace(origin, varied="")}
    for factor, changes in variations:
        for change in changes:
            setting = replace(origin, varied=factor, **change)
            if replace(setting, varied="") not in seen:
                seen.add(replace(setting, varied=""))
                rows.append(setting)
    return rows


@dataclass(frozen=True)
class SelfInfluenceOptions:
    targets: int = 40  # k-means targets (seed 000: 40), capped at the manifest size
    padded_targets: int = 4  # extra short (padded) targets, for R of padded recordings
    top_k: int = 100  # CLAP_topk / CLAP_botk (seed 000: 100), capped at (N - 1) // 2
    loss_timesteps: int | None = 8  # study's draws per item for the scores; None = platform's
    fd_targets: int = 8  # targets whose samples enter the Frechet distance
    fd_samples: int = 2  # samples per FD target, each with theta0 and with theta_u
    sample_steps: int | None = None  # sampler steps (None: the generator's default)
    seed: int = 0
    # every setting is run with each of these loss draw banks: which recordings outrank a
    # target must not be an artefact of one draw of (t, noise)
    draw_banks: tuple[int, ...] = (0, 1)
    regime_probe: int = 8  # items of the exact vs first-order check per target

    def __post_init__(self) -> None:
        if not (isinstance(self.targets, int) and self.targets >= 1):
            raise InvalidInput(f"--targets must be at least 1 (got {self.targets})")
        for name in ("padded_targets", "fd_targets", "fd_samples"):
            if getattr(self, name) < 0:
                raise InvalidInput(f"{name} must be >= 0")
        if self.top_k < 1:
            raise InvalidInput("top_k must be at least 1")
        if self.loss_timesteps is not None and self.loss_timesteps < 1:
            raise InvalidInput("loss_timesteps must be at least 1")
        if self.sample_steps is not None and self.sample_steps < 1:
            raise InvalidInput("sample_steps must be at least 1")
        if not self.draw_banks or any(b < 0 for b in self.draw_banks):
            raise InvalidInput("draw_banks must be one or more integers >= 0")


SELF_INFLUENCE_COLUMNS = (
    "setting", "varied", "bank", "own_loss_rise", "pearson_first_order", "learning_rate",
    "steps", "layer_group", "unlearn_mask", "loss_mask",
    "targets", "mean_rank", "median_rank", "rank1_share", "padded_targets", "mean_rank_padded",
    "mean_rank_unpadded", "clap_topk", "clap_botk", "fd", "fd_samples", "seconds",
)  # fmt: skip


def _sample_vectors(
    generator: Generator,
    context: ModelContext,
    encoder: AudioTextEncoder,
    index: int,
    options: SelfInfluenceOptions,
) -> list[np.ndarray]:
    """CLAP vectors of `fd_samples` samples generated with training item `index`'s own
    conditioning (same seeds for theta0 and theta_u: only the weights differ)."""
    example = context.target.example(context.items[index])
    seconds = min(context.generator.max_seconds, max(1.0, context.real_seconds(index)))
    vectors = []
    for n in range(options.fd_samples):
        spec = baselines.spec_from_conditioning(
            example.cond, generator.roles, seed=options.seed * 100_003 + index * 101 + n,
            seconds=seconds, steps=options.sample_steps,
        )  # fmt: skip
        logmel = generator.generate_mel(spec)
        vectors.append(embed_output(generator.render(logmel, spec), generator.sample_rate, encoder))
    return vectors


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def self_influence_study(
    *,
    model_version_id: int | None,
    options: SelfInfluenceOptions,
    grid: Sequence[GridSetting] | None = None,
    out: Out = quiet,
) -> StudyReport:
    """Seed 000 3.2 on a model version: see the module docstring. `grid=None`: `study_grid`'s
    one-factor-at-a-time default around the platform's settings."""
    started = time.monotonic()
    model_version = study_model_version(model_version_id=model_version_id)
    tracks = training_track_vectors(model_version=model_version)
    base = tda_config()
    grid = list(grid) if grid is not None else study_grid(base)
    if not grid:
        raise InvalidInput("the grid is empty")
    context = model_context(model_version=model_version, config=base, out=out)
    n_items = len(context.manifest)
    notes: list[str] = []

    def note(text: str) -> None:
        notes.append(text)
        out(f"note: {text}")

    count = options.targets
    if count > n_items:
        count = n_items
        note(f"--targets {options.targets} capped at the manifest size {n_items}")
    embeddings = np.stack([tracks[int(rid)] for rid in context.manifest.ids])
    chosen = baselines.kmeans_representatives(embeddings, count, seed=options.seed)
    padded = context.padded()
    extra = [
        i
        for i in sorted(range(n_items), key=lambda i: np.asarray(context.items[i].logmel).shape[1])
        if padded[i] and i not in chosen
    ][: options.padded_targets]
    targets = chosen + extra
    if not any(padded[i] for i in targets):
        note("no training item is shorter than the model's context: R of padded items is empty")
    top_k = max(1, min(options.top_k, (n_items - 1) // 2))
    if top_k != options.top_k:
        note(f"CLAP top/bottom-k uses k = {top_k} (at most (N - 1) // 2 of N = {n_items})")
    fd_targets = chosen[: options.fd_targets]
    fd_possible = len(fd_targets) * options.fd_samples >= 2
    if not fd_possible:
        note("FD needs at least 2 samples per side (fd_targets x fd_samples): not computed")
    encoder = loaded_encoder(model_version.encoder)
    before: list[np.ndarray] = []
    if fd_possible:
        clock = time.monotonic()
        for index in fd_targets:
            before += _sample_vectors(context.generator, context, encoder, index, options)
        out(
            f"{len(before)} theta0 samples generated and embedded in "
            f"{time.monotonic() - clock:.1f} s"
        )
    ids = [int(i) for i in context.manifest.ids]
    out(
        f"{len(grid)} settings x {len(targets)} targets ({len(chosen)} by k-means, {len(extra)} "
        f"short padded), {n_items} items scored per target, loss draws "
        f"{options.loss_timesteps or base.loss_timesteps}"
    )
    rows: list[dict[str, Any]] = []
    runs = [(setting, bank) for setting in grid for bank in options.draw_banks]
    for s, (setting, bank) in enumerate(runs, 1):
        clock = time.monotonic()
        overrides = {"loss_timesteps": options.loss_timesteps} if options.loss_timesteps else {}
        overrides["loss_draw_banks"] = max(base.loss_draw_banks, max(options.draw_banks) + 1)
        overrides["regime_probe_items"] = options.regime_probe
        config = setting.config(base, **overrides)
        fisher = context.fisher(config)
        cache = context.cache(config, bank=bank)
        ranks: dict[int, int] = {}
        above: dict[int, list[int]] = {}  # recordings whose loss rose more than the target's
        tops, bottoms, after, rises, pearsons = [], [], [], [], []
        for j, index in enumerate(targets, 1):
            query = context.target.example(context.items[index])
            result = unlearn(
                context.target, context.model, query, fisher, config, n_items=n_items,
                query_key=f"train:{index}",
            )  # fmt: skip
            chunk = score_chunk(
                context.target, context.model, result.model, context.manifest, config, 0,
                n_items, cache=cache,
            )  # fmt: skip
            if options.regime_probe:
                regime = regime_check(
                    context.target, context.model, result.model, query, context.manifest,
                    config, query_key=f"train:{index}", bank=bank,
                )  # fmt: skip
                rises.append(regime.own_loss_rise)
                pearsons.append(regime.pearson)
            ranks[index] = target_rank(chunk.scores, index)
            higher = np.flatnonzero(chunk.scores > chunk.scores[index])
            above[index] = [ids[k] for k in higher[np.argsort(-chunk.scores[higher])][:10]]
            if index in chosen:
                top, bottom = clap_top_bottom(
                    chunk.scores, embeddings, embeddings[index], top_k, exclude=index
                )
                tops.append(top)
                bottoms.append(bottom)
            if fd_possible and index in fd_targets:
                unlearned = result.model.use_fused_attention(True)  # sampled, no longer scored
                after += _sample_vectors(
                    Generator(unlearned, context.generator.config, device=str(context.device)),
                    context, encoder, index, options,
                )  # fmt: skip
            out(
                f"  [{s}/{len(runs)}] bank {bank} target {j}/{len(targets)} recording "
                f"{ids[index]}{' (padded)' if padded[index] else ''}: R = {ranks[index]} of "
                f"{n_items} ({time.monotonic() - clock:.1f} s)"
            )
        kmeans_ranks = [ranks[i] for i in chosen]
        row = {
            "setting": setting.label,
            "varied": setting.varied,
            "bank": bank,
            "own_loss_rise": _mean(rises),
            "pearson_first_order": _mean([p for p in pearsons if np.isfinite(p)]),
            "learning_rate": setting.learning_rate,
            "steps": setting.steps,
            "layer_group": setting.layer_group,
            "unlearn_mask": setting.unlearn_mask,
            "loss_mask": setting.loss_mask,
            "targets": len(chosen),
            "mean_rank": float(np.mean(kmeans_ranks)),
            "median_rank": float(np.median(kmeans_ranks)),
            "rank1_share": float(np.mean([r == 1 for r in kmeans_ranks])),
            "padded_targets": sum(padded[i] for i in targets),
            "mean_rank_padded": _mean([ranks[i] for i in targets if padded[i]]),
            "mean_rank_unpadded": _mean([ranks[i] for i in targets if not padded[i]]),
            "clap_topk": float(np.mean(tops)),
            "clap_botk": float(np.mean(bottoms)),
            "fd": (
                baselines.frechet_distance_in_span(np.stack(before), np.stack(after))
                if fd_possible
                else None
            ),
            "fd_samples": len(after),
            "seconds": time.monotonic() - clock,
            "ranks": {str(ids[i]): r for i, r in ranks.items()},
            "outranked_by": {str(ids[i]): found for i, found in above.items() if found},
        }
        rows.append(row)
        if s == 1:
            out(self_influence_header())
        out(self_influence_line(row))

    directory = report_directory("tda_self_influence")
    wall = time.monotonic() - started
    summary = {
        "command": "tda_self_influence",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "headline": {
            "model version": str(model_version),
            "settings": len(rows),
            "targets": len(targets),
            "training items": n_items,
            "best mean R(z_tar)": min(r["mean_rank"] for r in rows),
            "wall seconds": round(wall, 1),
        },
        "model_version": {
            "id": model_version.pk,
            "name": str(model_version),
            "checkpoint_sha256": context.sha,
            "manifest_digest": context.manifest.digest,
            "encoder": str(model_version.encoder),
        },  # fmt: skip
        "platform_config": base.to_dict(),
        "options": asdict(options),
        "top_k": top_k,
        "targets": [
            {
                "recording": ids[i],
                "index": i,
                "kmeans": i in chosen,
                "padded": padded[i],
                "seconds": context.real_seconds(i),
                "fd": i in fd_targets,
            }
            for i in targets
        ],  # fmt: skip
        "notes": notes,
        "hubs": hub_analysis(rows),
        "wall_seconds": wall,
    }
    files = [
        write_csv(directory / "table.csv", rows, SELF_INFLUENCE_COLUMNS),
        write_json(directory / "table.json", {**summary, "rows": rows}),
        write_json(directory / "summary.json", summary),
        plots.plot_self_influence(rows, directory / "self_influence.png"),
    ]
    return StudyReport(directory, rows, summary, files)


def hub_analysis(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per learning rate: how often each recording outranks a target, for each draw bank, and
    whether two banks agree (Spearman of the counts over recordings, overlap of their top 5):
    a recording that outranks targets under one bank only is draw noise, not a hub."""
    by_lr: dict[float, dict[int, dict[str, int]]] = {}
    for row in rows:
        counts: dict[str, int] = {}
        for found in row["outranked_by"].values():
            for rid in found:
                counts[str(rid)] = counts.get(str(rid), 0) + 1
        by_lr.setdefault(float(row["learning_rate"]), {})[int(row["bank"])] = counts
    out: dict[str, Any] = {}
    for lr, banks in sorted(by_lr.items()):
        entry: dict[str, Any] = {
            "top": {str(b): sorted(c.items(), key=lambda kv: -kv[1])[:5] for b, c in banks.items()}
        }
        if len(banks) >= 2:
            (_, a), (_, b) = sorted(banks.items())[:2]
            keys = sorted(set(a) | set(b))
            if len(keys) >= 2:
                x = np.array([a.get(k, 0) for k in keys], dtype=float)
                y = np.array([b.get(k, 0) for k in keys], dtype=float)
                entry["spearman_between_banks"] = (
                    float(spearman(x, y)) if x.std() > 0 and y.std() > 0 else None
                )
            top_a = {k for k, _ in sorted(a.items(), key=lambda kv: -kv[1])[:5]}
            top_b = {k for k, _ in sorted(b.items(), key=lambda kv: -kv[1])[:5]}
            entry["top5_shared"] = sorted(top_a & top_b)
        out[f"{lr:g}"] = entry
    return out


def _cell(value: Any, width: int, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return f"{'-':>{width}}"
    return f"{value:>{width}{spec}}"


def self_influence_header() -> str:
    return (
        f"{'setting':<40} {'bank':>4} {'rise':>9} {'r(1st)':>6} {'R(z_tar)':>8} "
        f"{'R padded':>8} {'R full':>7} {'CLAP top':>8} "
        f"{'CLAP bot':>8} {'FD':>9} {'time':>7}"
    )


def self_influence_line(row: Mapping[str, Any]) -> str:
    return (
        f"{row['setting']:<40} {row['bank']:>4} {_cell(row['own_loss_rise'], 9, '.3g')} "
        f"{_cell(row['pearson_first_order'], 6, '.3f')} {_cell(row['mean_rank'], 8, '.2f')} "
        f"{_cell(row['mean_rank_padded'], 8, '.2f')} {_cell(row['mean_rank_unpadded'], 7, '.2f')} "
        f"{_cell(row['clap_topk'], 8)} {_cell(row['clap_botk'], 8)} {_cell(row['fd'], 9, '.4g')} "
        f"{row['seconds']:>6.1f}s"
    )
