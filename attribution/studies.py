"""Seed 000's evaluation of training-time attribution, run on the platform's own model versions.

- `self_influence_study` (Train-to-Train, seed 000 3.2; `manage.py tda_self_influence`):
  unlearn training items chosen by k-means on their CLAP track vectors, score every training
  item, and report per grid setting (learning rate, steps, layer group, masks) the target's rank
  R(z_tar), CLAP_topk / CLAP_botk and the Frechet distance of CLAP embeddings of samples
  generated before vs after unlearning (Table 1).
- `compare_study` (Test-to-Train, 3.3; `manage.py tda_compare`): generated outputs scored by
  exact unlearning, windowed CLAP similarity, DiT-activation similarity and representer points;
  Fig. 1 (min-max and softmax views), Fig. 2 (Pearson correlations), and the first-order fast
  path against the exact scores (speed-up per query, Spearman).

Both reuse the product's pieces: the model version's generator and training items
(generation.services.attribution_inputs), the platform TDA settings (`tda_config`), and the
shared Fisher and theta0 loss cache of the model version (the directory the product's jobs use),
so a study never recomputes what a job already did and vice versa. Reports (CSV, JSON, PNG) are
written under TDA_STATE_DIR/reports/<command>-<UTC time>/; `tda_reports` lists them for staff.
"""

from __future__ import annotations

import copy
import csv
import json
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import torch
from django.conf import settings
from django.contrib.auth import get_user_model
from torch import nn

from attribution.models import TrainingAttribution
from attribution.services.training import tda_config, tda_model_directory
from attribution.tda import (
    LAYER_GROUPS,
    AttributionRun,
    BaseLossCache,
    FastIndex,
    FisherInfo,
    Manifest,
    TDAConfig,
    TDAError,
    baselines,
    clap_top_bottom,
    fisher_file_name,
    item_losses,
    load_or_compute_fisher,
    plots,
    score_chunk,
    target_rank,
    time_per_query,
    unlearn,
)
from attribution.tda.config import PROJECTIONS
from attribution.tda.fast import compare as fast_agreement
from attribution.tda.platform_model import PlatformTarget, platform_manifest
from catalog.encoders import AudioTextEncoder, WindowSpec
from catalog.models import RecordingEmbedding, Use
from catalog.retrieval.runtime import loaded_encoder
from catalog.selectors import recordings_permitting
from catalog.services.embedding import audio_embed_windows
from config.exceptions import Conflict, DomainError, InvalidInput, NotFound
from generation.evaluation import embed_output
from generation.model import Generator, GeneratorError
from generation.models import ModelVersion
from generation.selectors import (
    active_model_version,
    generation_get,
    model_version_get,
    servable_model_version,
)
from generation.services.attribution_inputs import (
    GeneratedSample,
    generated_sample,
    model_version_generator,
    model_version_training_items,
)

Out = Callable[[str], None]

# The exceptions a study turns into a clear message (commands print it and exit non-zero).
STUDY_ERRORS = (DomainError, TDAError, GeneratorError, ValueError, OSError)

REPORT_NAME = re.compile(r"^(tda|audit)_[a-z_]+-\d{8}-\d{6}(-\d+)?$")  # audit: seed 003
REPORT_FILE = re.compile(r"^[A-Za-z0-9_.-]+\.(png|csv|json)$")

# Seed 000 Table 1's masking settings: (M_U when unlearning, M_L when measuring losses).
MASKS = {
    "both": (True, True),
    "mixed": (True, False),  # seed 000's choice
    "loss-only": (False, True),
    "none": (False, False),
}
SPEEDUP_GOAL, SPEARMAN_GOAL, OUTPUTS_GOAL = 100.0, 0.9, 10


def _quiet(_: str) -> None:
    return None


# -- shared pieces ---------------------------------------------------------------------------


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
    out: Out = _quiet
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

    def cache(self, config: TDAConfig) -> BaseLossCache:
        """theta0's losses for these loss settings, shared like the product's."""
        key = json.dumps(config.loss_settings(), sort_keys=True)
        if key not in self.caches:
            self.caches[key] = BaseLossCache(
                self.shared / "losses", target=self.target, model_version=self.sha,
                manifest=self.manifest, config=config, device=self.device,
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
    manifest = platform_manifest(items)
    target = PlatformTarget(generator.config)
    device = config.resolve_device()
    model = target.prepare(copy.deepcopy(generator.model).to(device))
    out(
        f"Model version {model_version} (checkpoint {model_version.checkpoint_sha256[:12]}), "
        f"{len(items)} training items, device {device}"
    )
    return ModelContext(model_version, generator, items, manifest, target, model, device, out)


# -- reports ---------------------------------------------------------------------------------


def reports_root() -> Path:
    return Path(settings.TDA_STATE_DIR) / "reports"


def report_directory(command: str) -> Path:
    """A new directory reports/<command>-<UTC time>[-n]/."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    root = reports_root()
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = root / (f"{command}-{stamp}" if n == 1 else f"{command}-{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise Conflict(f"too many {command} reports at {stamp}")


def _json_value(value: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_value(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def _write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(_json_value(data), indent=1, sort_keys=True))
    return path


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            values = [_json_value(row.get(c)) for c in columns]
            writer.writerow(["" if v is None else v for v in values])
    return path


@dataclass
class StudyReport:
    directory: Path
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    files: list[Path]


@dataclass(frozen=True)
class ReportListing:
    name: str
    command: str
    created: str
    images: list[str]
    data: list[str]
    summary: dict[str, Any]


def tda_reports() -> list[ReportListing]:
    """Saved study reports, newest first, with their figures and data files."""
    root = reports_root()
    if not root.is_dir():
        return []
    listings = []

    def written(path: Path) -> tuple[str, int]:  # the name's second, then the file clock
        summary = path / "summary.json"
        return path.name.split("-", 1)[-1], summary.stat().st_mtime_ns if summary.is_file() else 0

    for path in sorted(root.iterdir(), key=written, reverse=True):
        if not path.is_dir() or not REPORT_NAME.match(path.name):
            continue
        files = sorted(p.name for p in path.iterdir() if p.is_file() and REPORT_FILE.match(p.name))
        summary: dict[str, Any] = {}
        if (path / "summary.json").is_file():
            try:
                summary = json.loads((path / "summary.json").read_text())
            except (OSError, ValueError):
                summary = {}
        listings.append(
            ReportListing(
                name=path.name,
                command=path.name.split("-", 1)[0],
                created=str(summary.get("created", "")),
                images=[f for f in files if f.endswith(".png")],
                data=[f for f in files if not f.endswith(".png")],
                summary=dict(summary.get("headline", {})),
            )
        )
    return listings


def tda_report_file(*, report: str, filename: str) -> Path:
    """A file of a saved report (only names the listing shows; no path escapes)."""
    if not REPORT_NAME.match(report) or not REPORT_FILE.match(filename):
        raise NotFound("no such report file")
    path = reports_root() / report / filename
    if not path.is_file():
        raise NotFound("no such report file")
    return path


# -- Train-to-Train: self-influence grid (seed 000 3.2) -------------------------------------------


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
    group; every masking."""
    lr = base.learning_rate
    lrs = list(learning_rates or (lr / 10, lr, lr * 10))
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


SELF_INFLUENCE_COLUMNS = (
    "setting", "varied", "learning_rate", "steps", "layer_group", "unlearn_mask", "loss_mask",
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
    out: Out = _quiet,
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
    for s, setting in enumerate(grid, 1):
        clock = time.monotonic()
        overrides = {"loss_timesteps": options.loss_timesteps} if options.loss_timesteps else {}
        config = setting.config(base, **overrides)
        fisher = context.fisher(config)
        cache = context.cache(config)
        ranks: dict[int, int] = {}
        above: dict[int, list[int]] = {}  # recordings whose loss rose more than the target's
        tops, bottoms, after = [], [], []
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
                f"  [{s}/{len(grid)}] target {j}/{len(targets)} recording {ids[index]}"
                f"{' (padded)' if padded[index] else ''}: R = {ranks[index]} of {n_items} "
                f"({time.monotonic() - clock:.1f} s)"
            )
        kmeans_ranks = [ranks[i] for i in chosen]
        row = {
            "setting": setting.label,
            "varied": setting.varied,
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
        "wall_seconds": wall,
    }
    files = [
        _write_csv(directory / "table.csv", rows, SELF_INFLUENCE_COLUMNS),
        _write_json(directory / "table.json", {**summary, "rows": rows}),
        _write_json(directory / "summary.json", summary),
        plots.plot_self_influence(rows, directory / "self_influence.png"),
    ]
    return StudyReport(directory, rows, summary, files)


def _cell(value: Any, width: int, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return f"{'-':>{width}}"
    return f"{value:>{width}{spec}}"


def self_influence_header() -> str:
    return (
        f"{'setting':<40} {'R(z_tar)':>8} {'R padded':>8} {'R full':>7} {'CLAP top':>8} "
        f"{'CLAP bot':>8} {'FD':>9} {'time':>7}"
    )


def self_influence_line(row: Mapping[str, Any]) -> str:
    return (
        f"{row['setting']:<40} {_cell(row['mean_rank'], 8, '.2f')} "
        f"{_cell(row['mean_rank_padded'], 8, '.2f')} {_cell(row['mean_rank_unpadded'], 7, '.2f')} "
        f"{_cell(row['clap_topk'], 8)} {_cell(row['clap_botk'], 8)} {_cell(row['fd'], 9, '.4g')} "
        f"{row['seconds']:>6.1f}s"
    )


# -- Test-to-Train: comparison with non-counterfactual methods (seed 000 3.3) ------------------


@dataclass(frozen=True)
class CompareOptions:
    latest: int = 10  # without refs or --generate: the most recent succeeded generations
    generate: int = 0  # make this many new generations first (product services)
    user: str | None = None  # who the new generations are made for (and charged to)
    seconds: float | None = None  # length of new generations (default: the model's maximum)
    references: int = 2  # references per new generation
    distribution: str = "private"
    fast: bool = True  # compare the first-order fast path with the exact scores
    fast_repeats: int = 3  # best of this many timings of a fast query
    projection_dims: tuple[int, ...] = ()  # fast-path projection sizes (default: platform's)
    projection: str | None = None  # fast-path projection kind (default: platform's)
    fast_query_draws: int | None = None  # draws of a fast query's gradient (default: platform's)
    window_hop: float = 1.0  # seconds between the output's CLAP windows (seed 000: 1 s)
    probe: baselines.ProbeConfig = field(default_factory=baselines.ProbeConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.latest < 1:
            raise InvalidInput("--latest must be at least 1")
        if self.generate < 0:
            raise InvalidInput("--generate must be >= 0")
        if self.generate and not self.user:
            raise InvalidInput("--generate needs --user (who the generations are made for)")
        if self.references < 1:
            raise InvalidInput("--references must be at least 1")
        if any(not (isinstance(d, int) and d >= 1) for d in self.projection_dims):
            raise InvalidInput("--projection-dims must be integers >= 1")
        if self.projection is not None and self.projection not in PROJECTIONS:
            raise InvalidInput(f"--projection must be one of {list(PROJECTIONS)}")
        if self.fast_repeats < 1:
            raise InvalidInput("--fast-repeats must be at least 1")
        if not (0 < self.window_hop < float("inf")):
            raise InvalidInput("--window-hop must be > 0")


def _generate(*, model_version: ModelVersion, options: CompareOptions, out: Out) -> list[str]:
    """New generations through the product's services (verified, recorded, charged), from
    random references permitted for song-level inference, run in this process."""
    from generation.services.requests import GenerationAsk, generation_request_submit
    from generation.services.running import generation_run
    from generation.verification import ReferenceSpec

    user = get_user_model().objects.filter(username=options.user).first()
    if user is None:
        raise NotFound(f"user {options.user!r} does not exist")
    if servable_model_version().pk != model_version.pk:
        raise InvalidInput(
            f"--generate uses the served model; model version {model_version} is not it"
        )
    generator = model_version_generator(model_version_id=model_version.pk)
    permitted = recordings_permitting(use=Use.SONG_INFERENCE, distribution=options.distribution)
    candidates = sorted(
        RecordingEmbedding.objects.filter(
            encoder_id=model_version.encoder_id, recording__in=permitted
        ).values_list("recording_id", flat=True)
    )
    if not candidates:
        raise Conflict("no embedded recording is permitted for song-level inference")
    role = "style" if "style" in generator.roles else generator.roles[0]
    count = min(options.references, len(candidates), generator.config.dit.max_references)
    seconds = options.seconds or generator.max_seconds
    rng = np.random.default_rng(options.seed)
    refs = []
    for n in range(options.generate):
        chosen = [int(r) for r in rng.choice(candidates, size=count, replace=False)]
        ask = GenerationAsk(
            references=[ReferenceSpec(rid, "song", role, 1.0) for rid in chosen],
            distribution=options.distribution, seconds=seconds, seed=int(rng.integers(2**31)),
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
        out(f"generated {n + 1}/{options.generate}: {generation.ref} from recordings {chosen}")
        refs.append(generation.ref)
    return refs


def _latest_refs(*, model_version: ModelVersion, count: int) -> list[str]:
    """The most recent generations of the model version: every succeeded generation has a
    training-attribution job (attribution's own table), whatever its status."""
    return list(
        TrainingAttribution.objects.filter(model_version_id=model_version.pk)
        .order_by("-created_at")
        .values_list("generation_ref", flat=True)[:count]
    )


def _samples(
    refs: Sequence[str], model_version: ModelVersion, *, explicit: bool, out: Out
) -> list[GeneratedSample]:
    samples = []
    for ref in refs:
        try:
            sample = generated_sample(generation_ref=ref)
        except DomainError as exc:
            if explicit:
                raise
            out(f"note: skipped generation {ref}: {exc.message}")
            continue
        if sample.model_version_id != model_version.pk:
            raise InvalidInput(
                f"generation {ref} was made by model version {sample.model_version_id}, not "
                f"{model_version.pk}: pass --model-version {sample.model_version_id}"
            )
        samples.append(sample)
    return samples


def _output_windows(
    generator: Generator, sample: GeneratedSample, encoder: AudioTextEncoder, hop: float
) -> np.ndarray:
    """CLAP windows of the rendered output (the product's rendering of the sampled log-mel),
    `hop` seconds apart."""
    import librosa

    audio = generator.render(sample.logmel, sample.spec)
    if generator.sample_rate != encoder.sample_rate:
        audio = librosa.resample(
            audio, orig_sr=generator.sample_rate, target_sr=encoder.sample_rate
        )
    spec = WindowSpec(encoder.window_seconds, min(hop, encoder.window_seconds), min_seconds=1.0)
    _, vectors = audio_embed_windows(
        audio=np.asarray(audio, dtype=np.float32), encoder=encoder, spec=spec
    )
    return np.asarray(vectors, dtype=np.float64)


def _items_for_speedup(
    goal: float,
    unlearn_seconds: Sequence[float],
    exact_seconds: Sequence[float],
    fast_seconds: Sequence[float],
    n_items: int,
) -> int | None:
    """Training-set size at which the measured costs would give `goal` x, by linear
    extrapolation: an exact query costs its unlearning (independent of N) plus N item losses;
    a fast query costs one gradient and N dot products (negligible below millions of items).
    An extrapolation, not a measurement; None when scoring took no measurable time."""
    unlearning = float(np.mean(unlearn_seconds))
    per_item = (float(np.mean(exact_seconds)) - unlearning) / n_items
    if per_item <= 0:
        return None
    return max(n_items, int(np.ceil((goal * float(np.mean(fast_seconds)) - unlearning) / per_item)))


def _fast_path(
    context: ModelContext,
    config: TDAConfig,
    fisher: FisherInfo,
    samples: Sequence[GeneratedSample],
    queries: Sequence[Any],
    exact: Sequence[np.ndarray],
    exact_seconds: Sequence[float],
    unlearn_seconds: Sequence[float],
    *,
    repeats: int,
) -> tuple[list[np.ndarray], list[float], dict[str, Any]]:
    """First-order estimates of every output with `config`'s projection, each query timed
    (best of `repeats`), and their agreement with the exact scores."""
    clock = time.monotonic()
    index = FastIndex.build(
        context.target, context.model, context.manifest, fisher, config, model_version=context.sha
    )
    index_seconds = time.monotonic() - clock
    estimates, seconds = [], []
    for sample, query in zip(samples, queries, strict=True):

        def one(query=query, key=sample.generation_ref):
            return index.scores(context.target, context.model, query, fisher, config, query_key=key)

        estimates.append(one())
        seconds.append(time_per_query(one, repeats=repeats))
    agreement = [fast_agreement(e, f) for e, f in zip(exact, estimates, strict=True)]
    speedups = [e / f for e, f in zip(exact_seconds, seconds, strict=True)]
    rhos = np.array([a["spearman"] for a in agreement], dtype=np.float64)
    mean_rho = float(np.nanmean(rhos)) if np.any(np.isfinite(rhos)) else None
    summary = {
        "projection": config.projection,
        "projection_dim": config.projection_dim,
        "outputs": len(estimates),
        "index_seconds": index_seconds,
        "mean_exact_seconds": float(np.mean(exact_seconds)),
        "mean_fast_seconds": float(np.mean(seconds)),
        "mean_speedup": float(np.mean(speedups)),
        "min_speedup": float(np.min(speedups)),
        "mean_spearman": mean_rho,
        "min_spearman": float(np.nanmin(rhos)) if mean_rho is not None else None,
        "top1_agreement": float(np.mean([a["top1_agrees"] for a in agreement])),
        "projected_items_for_goal_speedup": _items_for_speedup(
            SPEEDUP_GOAL, unlearn_seconds, exact_seconds, seconds, len(context.manifest)
        ),
        "goal": {"speedup": SPEEDUP_GOAL, "spearman": SPEARMAN_GOAL, "outputs": OUTPUTS_GOAL},
    }
    summary["goal_reached"] = bool(
        summary["mean_speedup"] >= SPEEDUP_GOAL
        and mean_rho is not None and mean_rho >= SPEARMAN_GOAL
        and len(estimates) >= OUTPUTS_GOAL
    )  # fmt: skip
    return estimates, seconds, summary


OUTPUT_COLUMNS = (
    "generation", "exact_seconds", "exact_unlearn_seconds", "fast_seconds", "speedup",
    "spearman_fast", "pearson_fast", "top1_agrees", "pearson_clap", "pearson_activation",
    "pearson_rps", "top_recording",
)  # fmt: skip


def compare_study(
    *,
    model_version_id: int | None,
    generation_refs: Sequence[str] | None,
    options: CompareOptions,
    out: Out = _quiet,
) -> StudyReport:
    """Seed 000 3.3 on generated outputs: see the module docstring."""
    started = time.monotonic()
    model_version = study_model_version(model_version_id=model_version_id)
    training_track_vectors(model_version=model_version)  # refuses a model without embeddings
    config = tda_config()
    if generation_refs:
        refs, explicit = list(dict.fromkeys(generation_refs)), True
    elif options.generate:
        refs, explicit = _generate(model_version=model_version, options=options, out=out), True
    else:
        refs, explicit = _latest_refs(model_version=model_version, count=options.latest), False
    samples = _samples(refs, model_version, explicit=explicit, out=out)
    if not samples:
        raise Conflict(
            f"model version {model_version} has no succeeded generations to attribute; "
            "use --generate N or --generations REF..."
        )
    context = model_context(model_version=model_version, config=config, out=out)
    target, manifest, n_items = context.target, context.manifest, len(context.manifest)
    frames = context.generator.config.mel.frames_for(context.generator.max_seconds)
    for sample in samples:
        if sample.logmel.shape[-1] > frames:
            raise InvalidInput(
                f"generation {sample.generation_ref} is longer than the model's context"
            )
    notes: list[str] = []
    if options.fast and len(samples) < OUTPUTS_GOAL:
        notes.append(
            f"the fast path is compared over {len(samples)} outputs "
            f"(the goal asks >= {OUTPUTS_GOAL})"
        )
        out(f"note: {notes[-1]}")
    queries = [target.query_example(s.logmel, target.spec_conditioning(s.spec)) for s in samples]
    fisher = context.fisher(config)
    base_seconds = context.warm_cache(config)
    out(f"theta0 losses of {n_items} items ready in {base_seconds:.1f} s (once per model version)")

    # exact unlearning scores, as the product computes them (shared Fisher and loss cache)
    exact, timings, unlearn_seconds, results = [], [], [], {}
    with tempfile.TemporaryDirectory(prefix="tda-compare-") as scratch:
        for q, (sample, query) in enumerate(zip(samples, queries, strict=True), 1):
            run = AttributionRun(
                Path(scratch) / sample.generation_ref, target=target, model=context.model,
                manifest=manifest, query=query, config=config, model_version=context.sha,
                query_key=sample.generation_ref,
                fisher_path=context.shared / fisher_file_name(context.sha, manifest.digest, config),
                cache_dir=context.shared / "losses",
            )  # fmt: skip
            run.fisher()
            clock = time.monotonic()
            run.unlearned_model()
            unlearn_seconds.append(time.monotonic() - clock)
            run.score()
            timings.append(time.monotonic() - clock)
            result = run.result()
            exact.append(result.scores)
            results[sample.generation_ref] = result.to_dict()
            out(f"  exact [{q}/{len(samples)}] {sample.generation_ref}: {timings[-1]:.2f} s")

    # fast path: one index per model version, then a gradient and N dot products per query
    fast, fast_timings, fast_by_dim = [], [], {}
    if options.fast:
        for dim in options.projection_dims or (config.projection_dim,):
            fast_config = replace(
                config, projection_dim=dim, projection=options.projection or config.projection,
                fast_query_timesteps=(
                    config.fast_query_timesteps if options.fast_query_draws is None
                    else options.fast_query_draws
                ),
            )  # fmt: skip
            estimates, seconds, found = _fast_path(
                context, fast_config, fisher, samples, queries, exact, timings, unlearn_seconds,
                repeats=options.fast_repeats,
            )  # fmt: skip
            fast_by_dim[str(dim)] = found
            if not fast:  # the first dimension is the one compared and plotted
                fast, fast_timings = estimates, seconds
            rho = found["mean_spearman"]
            out(
                f"fast path, projection dim {dim}: index of {n_items} items built once in "
                f"{found['index_seconds']:.1f} s; per query {found['mean_fast_seconds']:.4f} s"
                f" ({found['mean_speedup']:.1f}x), mean Spearman "
                f"{'n/a' if rho is None else f'{rho:.3f}'}"
            )

    # similarity baselines
    encoder = loaded_encoder(model_version.encoder)
    item_windows = [np.stack([np.asarray(v) for _, v in item.windows]) for item in context.items]
    clap = [
        baselines.max_window_similarity(
            _output_windows(context.generator, s, encoder, options.window_hop), item_windows
        )
        for s in samples
    ]
    clock = time.monotonic()
    probes = baselines.baseline_scores(
        target, context.model, queries, manifest.items, options.probe
    )
    out(f"DiT-activation and RPS baselines in {time.monotonic() - clock:.1f} s")

    names = ["unlearning", "clap", "activation", "rps"] + (["fast"] if options.fast else [])
    per_output = []
    for q in range(len(samples)):
        scores = {
            "unlearning": exact[q], "clap": clap[q], "activation": probes["activation"][q],
            "rps": probes["rps"][q],
        }  # fmt: skip
        if options.fast:
            scores["fast"] = fast[q]
        per_output.append(scores)
    matrix = baselines.correlation_matrix(per_output, names)
    views = baselines.normalised_views(per_output, [n for n in names if n != "fast"], "unlearning")

    ids = [int(i) for i in manifest.ids]
    rows = []
    for q, sample in enumerate(samples):
        scores = per_output[q]
        single = baselines.correlation_matrix([scores], names)
        row: dict[str, Any] = {
            "generation": sample.generation_ref,
            "exact_seconds": timings[q],
            "exact_unlearn_seconds": unlearn_seconds[q],
            "pearson_clap": single[0, 1],
            "pearson_activation": single[0, 2],
            "pearson_rps": single[0, 3],
            "top_recording": ids[int(np.argmax(exact[q]))],
        }
        if options.fast:
            agreement = fast_agreement(exact[q], fast[q])
            row.update(
                fast_seconds=fast_timings[q],
                speedup=timings[q] / fast_timings[q],
                spearman_fast=agreement["spearman"],
                pearson_fast=agreement["pearson"],
                top1_agrees=bool(agreement["top1_agrees"]),
            )
        rows.append(row)

    fast_summary = next(iter(fast_by_dim.values()), {})

    wall = time.monotonic() - started
    summary = {
        "command": "tda_compare",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "headline": {
            "model version": str(model_version),
            "outputs": len(samples),
            "training items": n_items,
            **(
                {
                    "fast projection dim": fast_summary["projection_dim"],
                    "fast speed-up": round(fast_summary["mean_speedup"], 1),
                    "fast Spearman": fast_summary["mean_spearman"],
                }
                if options.fast
                else {}
            ),
            "wall seconds": round(wall, 1),
        },
        "model_version": {
            "id": model_version.pk,
            "name": str(model_version),
            "checkpoint_sha256": context.sha,
            "manifest_digest": manifest.digest,
            "encoder": str(model_version.encoder),
        },  # fmt: skip
        "config": config.to_dict(),
        "options": asdict(options),
        "methods": names,
        "correlation": {"names": names, "matrix": matrix},
        "fast_path": fast_summary,
        "fast_path_by_projection_dim": fast_by_dim,
        "base_loss_seconds": base_seconds,
        "notes": notes,
        "wall_seconds": wall,
    }
    scores_json = {
        "ids": ids,
        "outputs": [
            {"generation": s.generation_ref, **{n: per_output[q][n] for n in names}}
            for q, s in enumerate(samples)
        ],
    }
    correlation_rows = [
        {"method": a, **dict(zip(names, matrix[i], strict=True))} for i, a in enumerate(names)
    ]
    directory = report_directory("tda_compare")
    (directory / "runs").mkdir()
    for ref, result in results.items():  # scores with their provenance, as a job stores them
        _write_json(directory / "runs" / f"{ref}.json", result)
    files = [
        _write_csv(directory / "outputs.csv", rows, OUTPUT_COLUMNS),
        _write_csv(directory / "correlation.csv", correlation_rows, ["method", *names]),
        _write_json(directory / "scores.json", scores_json),
        _write_json(directory / "summary.json", {**summary, "rows": rows}),
        plots.plot_normalised_views(views, directory / "fig1_normalised_scores.png"),
        plots.plot_correlation(names, matrix, directory / "fig2_correlation.png"),
    ]
    if options.fast:
        files.append(plots.plot_fast_path(exact, fast, fast_summary, directory / "fast_path.png"))
    return StudyReport(directory, rows, summary, files)
