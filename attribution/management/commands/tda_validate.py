"""python manage.py tda_validate: the retraining ground truth of training-time attribution
(attribution/tda/validation.py) on a small generator built from catalogue recordings."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from attribution.studies.reports import report_directory
from attribution.tda import TDAError
from attribution.tda.validation import ValidationConfig, validate
from attribution.tda.validation_methods import similarity_scorer, unlearning_scorer
from config.exceptions import DomainError
from generation.model import (
    DiTConfig,
    GeneratorConfig,
    GeneratorError,
    GeneratorTrainingItem,
    MelConfig,
    TrainConfig,
)


def validation_generator_config(max_seconds: float) -> GeneratorConfig:
    """A small generator (16 kHz, 48 mel bins, 3 blocks of 64) whose retraining takes well
    under a minute on 2 CPU cores, with the platform's architecture and objective."""
    return GeneratorConfig(
        mel=MelConfig(sample_rate=16_000, n_fft=1024, hop_length=256, n_mels=48, fmax=8_000.0,
                      inverse_iters=4, griffin_lim_iters=16),
        dit=DiTConfig(dim=64, depth=3, heads=4, ff_mult=2, patch_frames=4,
                      max_seconds=max_seconds, max_references=4, timestep_features=64),
    )  # fmt: skip


class Command(BaseCommand):
    help = (
        "Validate training-time attribution against retraining: train a small generator on "
        "--items catalogue recordings (excerpts of --excerpt-seconds, consented to training), "
        "retrain it on --subsets random halves (and --second-seed of them with another seed), "
        "generate --queries outputs, and report per scoring method the LDS (Spearman of the "
        "predicted subset sum with the query loss of the retrained model) with its spread, "
        "the noise ceiling, and leave-top-k-out vs leave-random-k-out loss rises. Retrained "
        "models are cached by subset digest (an interrupted run resumes). Writes report.json "
        "and lds.png under TDA_STATE_DIR/reports/tda_validate-<time>/."
    )

    def add_arguments(self, parser):
        add = parser.add_argument
        add("--items", type=int, default=24, help="training items (catalogue recordings)")
        add("--excerpt-seconds", type=float, default=16.0, help="seconds of each recording")
        add("--max-seconds", type=float, default=4.0, help="the small generator's context")
        add("--steps", type=int, default=1500, help="training steps per model")
        add("--subsets", type=int, default=16)
        add("--second-seed", type=int, default=4, help="subsets also trained with seed 1")
        add("--queries", type=int, default=8)
        add("--leave-out", type=int, default=5)
        add("--random-leave-outs", type=int, default=4)
        add("--nonlinear-lr", type=float, default=1e-3)
        add("--paid", default="first_order_max", help="the method the platform pays by")
        add("--tda", default="{}", help="JSON overrides of the first-order TDAConfig")
        add("--cache", help="model cache directory (default TDA_STATE_DIR/validation)")
        add("--no-output-similarity", action="store_true", help="skip CLAP of the outputs")
        add("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **options):
        try:
            validation = ValidationConfig(
                subsets=options["subsets"], second_seed_subsets=options["second_seed"],
                queries=options["queries"], leave_out=options["leave_out"],
                random_leave_outs=options["random_leave_outs"],
            )  # fmt: skip
            config = validation_generator_config(options["max_seconds"])
            train = TrainConfig(
                steps=options["steps"], batch_size=8, learning_rate=2e-3, warmup_steps=20,
                ema_decay=0.98, min_crop_seconds=1.0, time_budget_seconds=None, device="cpu",
            )  # fmt: skip
        except (TDAError, GeneratorError) as exc:
            raise CommandError(str(exc)) from exc
        try:
            overrides = json.loads(options["tda"])
            assert isinstance(overrides, dict)
        except (ValueError, AssertionError):
            raise CommandError("--tda must be a JSON object of TDAConfig settings") from None
        if options["items"] < 8:
            raise CommandError("--items must be at least 8 (the issue asks for 24 or more)")
        items, encoder = self._items(options["items"], options["excerpt_seconds"], config)
        cache = Path(options["cache"] or Path(settings.TDA_STATE_DIR) / "validation")
        embed = None if options["no_output_similarity"] else self._embedder(encoder)
        started = time.monotonic()
        last = [0.0]

        def progress(stage: str, done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] > 1.0 or done >= total:
                last[0] = now
                bar = "#" * int(30 * done / max(total, 1))
                print(f"\r{stage:>8} [{bar:<30}] {done}/{total}  {now - started:6.0f} s",
                      end="", file=sys.stderr, flush=True)  # fmt: skip

        try:
            report = validate(
                items, config, train, validation,
                [unlearning_scorer(overrides, nonlinear_learning_rate=options["nonlinear_lr"]),
                 similarity_scorer(embed)],
                directory=cache, paid_method=options["paid"], progress=progress,
            )  # fmt: skip
        except (TDAError, GeneratorError, DomainError) as exc:
            raise CommandError(f"the validation cannot run: {exc}") from exc
        print(file=sys.stderr)
        out = report_directory("tda_validate")
        (out / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True))
        self._plot(report, out / "lds.png")
        self._print(report, out)
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=1, sort_keys=True))

    def _items(self, count: int, excerpt: float, config: GeneratorConfig):
        from catalog.retrieval.runtime import active_encoder_version
        from generation.services.models import generator_training_recordings, training_items

        recordings = generator_training_recordings()[:count]
        if len(recordings) < count:
            raise CommandError(
                f"only {len(recordings)} recordings are consented to training; need {count}"
            )
        try:
            encoder = active_encoder_version()
            full = training_items(recordings=recordings, encoder_version=encoder, config=config)
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        frames = config.mel.frames_for(excerpt)
        items = [
            GeneratorTrainingItem(
                recording_id=i.recording_id,
                logmel=np.asarray(i.logmel)[:, :frames],
                windows=[w for w in i.windows if w[0] < excerpt] or i.windows[:1],
                window_seconds=i.window_seconds,
                caption_embedding=i.caption_embedding,
            )  # fmt: skip
            for i in full
        ]
        self.stdout.write(
            f"{len(items)} items: catalogue recordings {[i.recording_id for i in items]}, the "
            f"first {excerpt:g} s of each; encoder {encoder}"
        )
        return items, encoder

    @staticmethod
    def _embedder(encoder):
        from catalog.retrieval.runtime import loaded_encoder
        from generation.candidates import embed_output

        model = loaded_encoder(encoder)
        return lambda audio, rate: embed_output(audio, rate, model)

    def _print(self, report: dict, out: Path) -> None:
        ceiling = report["noise_ceiling"]
        self.stdout.write(
            f"\n{report['items']} items, {len(report['subsets'])} subsets, "
            f"{len(report['query_base_losses'])} generated queries; noise ceiling "
            + (f"{ceiling['mean']:.3f} +- {ceiling['se']:.3f}" if ceiling else "n/a")
        )
        self.stdout.write(f"{'method':<28} {'LDS':>7} {'+-SE':>6} {'min':>6} {'max':>6}")
        rows = sorted(report["methods"].items(), key=lambda kv: -kv[1]["mean"])
        for name, row in rows:
            paid = "  <- paid" if name == report["paid_method"] else ""
            self.stdout.write(
                f"{name:<28} {row['mean']:>7.3f} {row['se']:>6.3f} {row['min']:>6.2f} "
                f"{row['max']:>6.2f}{paid}"
            )
        leave = report["leave_out"]
        self.stdout.write(
            f"leave-top-{leave['k']}-out beats leave-random-{leave['k']}-out beyond the seed "
            f"noise in {leave['beats']} of {leave['queries']} queries"
        )
        self.stdout.write(f"report: {out}")

    @staticmethod
    def _plot(report: dict, path: Path) -> None:
        from attribution.report_figures import new_figure, save_png

        rows = sorted(report["methods"].items(), key=lambda kv: kv[1]["mean"])
        figure, (axis,) = new_figure(7, 0.35 * len(rows) + 1.2)
        means = [r["mean"] for _, r in rows]
        errors = [r["se"] if np.isfinite(r["se"]) else 0 for _, r in rows]
        axis.barh([n for n, _ in rows], means, xerr=errors, color="#4a7ab5")
        if report["noise_ceiling"]:
            axis.axvline(report["noise_ceiling"]["mean"], color="#999", ls="--", label="ceiling")
            axis.legend(loc="lower right")
        axis.axvline(0, color="black", lw=0.8)
        axis.set_xlabel("LDS on generated outputs (mean over queries, +- SE)")
        save_png(figure, path)
