"""python manage.py tda_compare: seed 000's Test-to-Train comparison (section 3.3) on generated
outputs, plus the fast path against exact scores. See attribution/studies/compare.py."""

from __future__ import annotations

import time

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from attribution.studies.compare import CompareOptions, compare_study
from attribution.studies.context import STUDY_ERRORS
from attribution.tda.baselines import ProbeConfig
from attribution.tda.config import PROJECTIONS


def _cell(value, spec: str = ".3f", width: int = 8) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return f"{'n/a':>{width}}"
    return f"{value:>{width}{spec}}"


class Command(BaseCommand):
    help = (
        "Test-to-Train comparison (seed 000 3.3): per generated output, exact unlearning scores "
        "over the model version's training set, windowed CLAP similarity (all-against-all max), "
        "DiT-activation similarity (LPIPS-like) and representer points; Fig. 1 (min-max and "
        "softmax views sorted by unlearning score) and Fig. 2 (Pearson correlations) as PNG; "
        "and the first-order fast path against the exact scores (speed-up per query, Spearman; "
        "goal >= 100x and >= 0.9 over >= 10 outputs). Outputs: --generations REF..., else "
        "--generate N new ones (product services, for --user), else the --latest N generations "
        "of the model version. Saved under TDA_STATE_DIR/reports/tda_compare-<time>/."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model-version", type=int, help="id (default: the active one)")
        parser.add_argument("--generations", nargs="+", metavar="REF", help="generation ids")
        parser.add_argument("--latest", type=int, default=10, help="most recent generations")
        parser.add_argument(
            "--generate", type=int, default=0, metavar="N",
            help="make N new generations from random consented references first",
        )  # fmt: skip
        parser.add_argument("--user", help="username the new generations are made for")
        parser.add_argument("--seconds", type=float, help="length of new generations")
        parser.add_argument("--references", type=int, default=2, help="per new generation")
        parser.add_argument("--distribution", default="private", help="of new generations")
        parser.add_argument("--no-fast", action="store_true", help="skip the fast-path check")
        parser.add_argument("--fast-repeats", type=int, default=3, help="timings per query")
        parser.add_argument(
            "--projection-dims", type=int, nargs="+", metavar="D",
            help="fast-path projection sizes to try (default: the platform's projection_dim); "
            "the first is the one plotted and correlated",
        )  # fmt: skip
        parser.add_argument(
            "--projection", choices=PROJECTIONS, help="fast-path projection (default: platform's)"
        )
        parser.add_argument(
            "--fast-query-draws", type=int, metavar="K",
            help="(t, noise) draws of a fast query's gradient (default: the platform's; 0: as "
            "many as the exact unlearning)",
        )  # fmt: skip
        parser.add_argument(
            "--probe-timesteps", type=int, default=4,
            help="(t, noise) draws of the DiT-activation and RPS probes",
        )  # fmt: skip
        parser.add_argument(
            "--window-hop", type=float, default=1.0, help="seconds between output CLAP windows"
        )
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options):
        started = time.monotonic()
        try:
            study = CompareOptions(
                latest=options["latest"],
                generate=options["generate"],
                user=options["user"],
                seconds=options["seconds"],
                references=options["references"],
                distribution=options["distribution"],
                fast=not options["no_fast"],
                fast_repeats=options["fast_repeats"],
                projection_dims=tuple(options["projection_dims"] or ()),
                projection=options["projection"],
                fast_query_draws=options["fast_query_draws"],
                window_hop=options["window_hop"],
                probe=ProbeConfig(timesteps=options["probe_timesteps"], seed=options["seed"]),
                seed=options["seed"],
            )
            report = compare_study(
                model_version_id=options["model_version"],
                generation_refs=options["generations"],
                options=study,
                out=self.stdout.write,
            )
        except STUDY_ERRORS as exc:
            raise CommandError(getattr(exc, "message", None) or str(exc)) from exc
        fast = study.fast
        self.stdout.write(
            f"{'generation':<36} {'exact s':>8} "
            + (f"{'fast s':>8} {'speed-up':>8} {'Spearman':>8} {'top-1':>5} " if fast else "")
            + f"{'r CLAP':>8} {'r act':>8} {'r RPS':>8}"
        )
        for row in report.rows:
            self.stdout.write(
                f"{row['generation']:<36} {_cell(row['exact_seconds'], '.2f')} "
                + (
                    f"{_cell(row['fast_seconds'], '.4f')} {_cell(row['speedup'], '.1f')} "
                    f"{_cell(row['spearman_fast'])} {'yes' if row['top1_agrees'] else 'no':>5} "
                    if fast
                    else ""
                )
                + f"{_cell(row['pearson_clap'])} {_cell(row['pearson_activation'])} "
                f"{_cell(row['pearson_rps'])}"
            )
        correlation = report.summary["correlation"]
        names = correlation["names"]
        self.stdout.write("Pearson correlation (mean over outputs):")
        self.stdout.write(f"{'':>12}" + "".join(f"{n:>12}" for n in names))
        for name, values in zip(names, correlation["matrix"], strict=True):
            self.stdout.write(f"{name:>12}" + "".join(_cell(v, ".2f", 12) for v in values))
        if fast:
            summary = report.summary["fast_path"]
            self.stdout.write(
                f"Fast path (projection {summary['projection']}, dim {summary['projection_dim']}) "
                f"over {summary['outputs']} outputs: mean speed-up per query "
                f"{summary['mean_speedup']:.1f}x (exact {summary['mean_exact_seconds']:.3f} s, "
                f"fast {summary['mean_fast_seconds']:.4f} s; index built once in "
                f"{summary['index_seconds']:.1f} s), mean Spearman "
                f"{_cell(summary['mean_spearman'], '.3f', 0)} (min "
                f"{_cell(summary['min_spearman'], '.3f', 0)}), top-1 agreement "
                f"{summary['top1_agreement']:.2f}; goal >= {summary['goal']['speedup']:g}x with "
                f"Spearman >= {summary['goal']['spearman']} over >= {summary['goal']['outputs']} "
                f"outputs: {'reached' if summary['goal_reached'] else 'NOT reached'}"
            )
            projected = summary["projected_items_for_goal_speedup"]
            if projected is not None and not summary["goal_reached"]:
                self.stdout.write(
                    f"  (linear extrapolation of these costs: {summary['goal']['speedup']:g}x "
                    f"from about {projected} training items; measured here with "
                    f"{report.summary['headline']['training items']})"
                )
        self.stdout.write(f"Report: {report.directory}")
        for path in report.files:
            self.stdout.write(f"  {path.name}")
        self.stdout.write(f"Wall time {time.monotonic() - started:.1f} s")
