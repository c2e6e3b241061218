"""python manage.py evaluate_generator: how close is the generator's output to real music?"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.exceptions import DomainError
from generation.candidates import MAX_CANDIDATES
from generation.model import GeneratorError, load_generator
from generation.models import ModelVersion
from generation.selectors import active_model_version
from generation.services.quality import EvaluationSettings, generator_evaluate
from generation.services.running import loaded_generator


class Command(BaseCommand):
    help = (
        "Generate from random reference pairs and measure the outputs beside real held-out "
        "catalogue audio and its log-mel + Griffin-Lim resynthesis: Frechet distance in the "
        "musicnn and CLAP spaces, spectral measures, conditioning gap, memorisation rate and "
        "real-time factor. The report and listening samples are stored with the model version."
    )

    def add_arguments(self, parser):
        defaults = EvaluationSettings()
        parser.add_argument("--model-version", type=int, help="default: the served one")
        parser.add_argument(
            "--baseline", type=Path, help="checkpoint of a model to measure beside it (a row)"
        )
        parser.add_argument("--baseline-label", default="baseline")
        parser.add_argument("--generations", type=int, default=defaults.generations)
        parser.add_argument("--seconds", type=float, default=defaults.seconds)
        parser.add_argument(
            "--others", type=int, default=defaults.others_per_generation,
            help="random recordings each output's similarity is compared with",
        )  # fmt: skip
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--cfg-scale", type=float, help="default: each model's own")
        parser.add_argument(
            "--candidates", type=int,
            help="draws per output, the best kept (default: as served, GENERATION_CANDIDATES)",
        )  # fmt: skip
        parser.add_argument("--json", type=Path, help="also write the report to this file")
        parser.add_argument(
            "--no-store", action="store_true", help="print only (e.g. a guidance-scale sweep)"
        )

    def handle(self, *args, **options):
        if options["generations"] < 2:
            raise CommandError("--generations must be at least 2")
        if options["others"] < 1:
            raise CommandError("--others must be at least 1")
        if not 3.0 <= options["seconds"] <= 60.0:
            raise CommandError("--seconds must be between 3 and 60 (3-s clips are measured)")
        cfg = options["cfg_scale"]
        if cfg is not None and not 0 <= cfg <= 20:
            raise CommandError("--cfg-scale must be between 0 and 20")
        candidates = options["candidates"]
        if candidates is not None and not 1 <= candidates <= MAX_CANDIDATES:
            raise CommandError(f"--candidates must be between 1 and {MAX_CANDIDATES}")
        try:
            if options["model_version"]:
                model_version = ModelVersion.objects.filter(pk=options["model_version"]).first()
                if model_version is None:
                    raise CommandError(f"no model version {options['model_version']}")
            else:
                model_version = active_model_version()
            generator = loaded_generator(model_version)
            baseline = None
            if options["baseline"]:
                baseline = (options["baseline_label"], load_generator(options["baseline"]))
            report = generator_evaluate(
                model_version=model_version,
                generator=generator,
                label=f"model {model_version}",
                settings_=EvaluationSettings(
                    generations=options["generations"],
                    seconds=options["seconds"],
                    seed=options["seed"],
                    others_per_generation=options["others"],
                    cfg_scale=options["cfg_scale"],
                    candidates=candidates,
                ),
                baseline=baseline,
                progress=lambda message: self.stderr.write(message),
                store=not options["no_store"],
            )
        except (DomainError, GeneratorError) as exc:
            raise CommandError(getattr(exc, "message", str(exc))) from exc
        self.stdout.write(format_table(report))
        if options["json"]:
            options["json"].write_text(json.dumps(report, indent=1))
            self.stdout.write(f"report written to {options['json']}")


def _unbiased(frechet: dict, digits: int) -> str:
    fit = frechet.get("unbiased")
    if not fit:
        return f"{'-':>15}"
    return f"{fit['distance']:>8.{digits}f}±{fit['se']:<6.{digits}f}"


def format_table(report: dict) -> str:
    head = (
        f"{'set':<40} {'FD∞ musicnn':>15} {'FD musicnn':>15} {'FD∞ CLAP':>15} {'FD CLAP':>15} "
        f"{'flat':>6} {'harm':>5} {'onset':>5} {'LRA':>5} {'gap':>6} {'wins':>7} {'wins m':>7} "
        f"{'mem':>5} {'RTF':>5}"
    )
    lines = [head, "-" * len(head)]
    for row in report["rows"]:
        fd = row["frechet"]
        sig = row["signal"]
        cond = row.get("conditioning") or {}
        mem = (row.get("memorisation") or {}).get("rate")
        wins = f"{cond['closer_to_references']}/{cond['generations']}" if cond else "-"
        by_musicnn = row.get("conditioning_musicnn") or {}
        wins_m = (
            f"{by_musicnn['closer_to_references']}/{by_musicnn['generations']}"
            if "generations" in by_musicnn
            else "-"
        )
        lines.append(
            f"{row['name'][:40]:<40} "
            f"{_unbiased(fd['musicnn'], 2)}"
            f"{fd['musicnn']['distance']:>8.2f}±{fd['musicnn']['se']:<6.2f}"
            f"{_unbiased(fd['clap'], 3)}"
            f"{fd['clap']['distance']:>8.3f}±{fd['clap']['se']:<6.3f}"
            f"{sig['spectral_flatness']:>6.3f} {sig['harmonic_share']:>5.2f} "
            f"{sig['onset_strength']:>5.2f} {sig['loudness_range_db']:>5.1f} "
            f"{cond.get('gap', float('nan')):>6.3f} {wins:>7} {wins_m:>7} "
            f"{'-' if mem is None else f'{mem:.2f}':>5} "
            f"{row.get('real_time_factor', float('nan')):>5.2f}"
        )
    return "\n".join(lines)
