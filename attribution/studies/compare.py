"""Test-to-Train (seed 000 section 3.3, `manage.py tda_compare`): generated outputs scored by
exact unlearning, windowed CLAP similarity, DiT-activation similarity and representer points;
Fig. 1 (min-max and softmax views), Fig. 2 (Pearson correlations), and the first-order fast
path against the exact scores (speed-up per query, Spearman)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from attribution.models import TrainingAttribution
from attribution.services.training import tda_config
from attribution.studies.context import (
    ModelContext,
    Out,
    model_context,
    quiet,
    study_generations_make,
    study_model_version,
    training_track_vectors,
)
from attribution.studies.reports import StudyReport, report_directory, write_csv, write_json
from attribution.tda import (
    AttributionRun,
    FastIndex,
    FisherInfo,
    TDAConfig,
    baselines,
    fisher_file_name,
    plots,
    time_per_query,
)
from attribution.tda.config import PROJECTIONS
from attribution.tda.fast import compare as fast_agreement
from catalog.encoders import AudioTextEncoder, WindowSpec
from catalog.retrieval.runtime import loaded_encoder
from catalog.services.embedding import audio_embed_windows
from config.exceptions import Conflict, DomainError, InvalidInput
from generation.model import Generator
from generation.models import ModelVersion
from generation.services.attribution_inputs import (
    GeneratedSample,
    generated_sample,
)

SPEEDUP_GOAL, SPEARMAN_GOAL, OUTPUTS_GOAL = 100.0, 0.9, 10


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
    out: Out = quiet,
) -> StudyReport:
    """Seed 000 3.3 on generated outputs: see the module docstring."""
    started = time.monotonic()
    model_version = study_model_version(model_version_id=model_version_id)
    training_track_vectors(model_version=model_version)  # refuses a model without embeddings
    config = tda_config()
    if generation_refs:
        refs, explicit = list(dict.fromkeys(generation_refs)), True
    elif options.generate:
        refs = study_generations_make(
            model_version=model_version, username=options.user, count=options.generate,
            references=options.references, distribution=options.distribution,
            seconds=options.seconds, seed=options.seed, out=out,
        )  # fmt: skip
        explicit = True
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
        write_json(directory / "runs" / f"{ref}.json", result)
    files = [
        write_csv(directory / "outputs.csv", rows, OUTPUT_COLUMNS),
        write_csv(directory / "correlation.csv", correlation_rows, ["method", *names]),
        write_json(directory / "scores.json", scores_json),
        write_json(directory / "summary.json", {**summary, "rows": rows}),
        plots.plot_normalised_views(views, directory / "fig1_normalised_scores.png"),
        plots.plot_correlation(names, matrix, directory / "fig2_correlation.png"),
    ]
    if options.fast:
        files.append(plots.plot_fast_path(exact, fast, fast_summary, directory / "fast_path.png"))
    return StudyReport(directory, rows, summary, files)
