"""python manage.py tda_self_influence: seed 000's Train-to-Train grid (section 3.2) on a model
version. See attribution/studies/self_influence.py."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from attribution.services.training import tda_config
from attribution.studies.context import MASKS, STUDY_ERRORS
from attribution.studies.self_influence import (
    SelfInfluenceOptions,
    self_influence_study,
    study_grid,
)
from attribution.tda import LAYER_GROUPS


class Command(BaseCommand):
    help = (
        "Train-to-Train self-influence study (seed 000 3.2): unlearn training items chosen by "
        "k-means on their CLAP track vectors, score every training item, and report per grid "
        "setting the mean rank R(z_tar) of the target (1 is best; also for short padded "
        "recordings), CLAP similarity of the top-k / bottom-k attributed items to the target, "
        "and the Frechet distance of CLAP embeddings of samples generated before vs after "
        "unlearning. The grid is ONE FACTOR AT A TIME around the platform's TDA_CONFIG by "
        "default (its own row, then each value of --lr, --steps, --layer-groups and --masks "
        "with the other factors at the platform's values); --full-grid runs every combination. "
        "Uses the model version's shared Fisher (computed once, as the product's jobs do). "
        "Saves table.csv, table.json and self_influence.png under "
        "TDA_STATE_DIR/reports/tda_self_influence-<time>/."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model-version", type=int, help="id (default: the active one)")
        parser.add_argument(
            "--targets", type=int, default=40,
            help="training items to unlearn, chosen by k-means (seed 000: 40; capped at N)",
        )  # fmt: skip
        parser.add_argument(
            "--padded-targets", type=int, default=4,
            help="extra targets among the shortest padded items (R of padded recordings)",
        )  # fmt: skip
        parser.add_argument("--top-k", type=int, default=100, help="k of CLAP top/bottom-k")
        parser.add_argument(
            "--lr", type=float, nargs="+", metavar="LR",
            help="learning rates (default: 1e-7 .. 1e-1 by decades, with the platform's)",
        )  # fmt: skip
        parser.add_argument(
            "--steps", type=int, nargs="+", metavar="N", help="unlearning steps (default 1 2 4)"
        )
        parser.add_argument(
            "--layer-groups", nargs="+", choices=LAYER_GROUPS, metavar="GROUP",
            help=f"layer groups (default all: {' '.join(LAYER_GROUPS)})",
        )  # fmt: skip
        parser.add_argument(
            "--masks", nargs="+", choices=list(MASKS), metavar="MASKS",
            help="both (M_U and M_L), mixed (M_U only, seed 000), loss-only (M_L only), none "
            "(default: all four)",
        )  # fmt: skip
        parser.add_argument(
            "--full-grid", action="store_true", help="every combination, not one factor at a time"
        )
        parser.add_argument(
            "--loss-timesteps", type=int, default=8,
            help="(t, noise) draws per item for the study's scores (default 8: common random "
            "numbers keep the before/after difference precise with few draws)",
        )  # fmt: skip
        parser.add_argument(
            "--platform-loss-draws", action="store_true",
            help="score with the platform's loss_timesteps instead (exactly as a job does)",
        )  # fmt: skip
        parser.add_argument("--fd-targets", type=int, default=8, help="targets sampled for FD")
        parser.add_argument("--fd-samples", type=int, default=2, help="samples per FD target")
        parser.add_argument("--sample-steps", type=int, help="sampler steps (default: model's)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--draw-banks", type=int, nargs="+", default=[0, 1], metavar="BANK",
            help="loss draw banks every setting is run with (default 0 1: two draw seeds)",
        )  # fmt: skip

    def handle(self, *args, **options):
        started = time.monotonic()
        if options["targets"] < 1:
            raise CommandError(f"--targets must be at least 1 (got {options['targets']})")
        try:
            study = SelfInfluenceOptions(
                targets=options["targets"],
                padded_targets=options["padded_targets"],
                top_k=options["top_k"],
                loss_timesteps=None
                if options["platform_loss_draws"]
                else options["loss_timesteps"],
                fd_targets=options["fd_targets"],
                fd_samples=options["fd_samples"],
                sample_steps=options["sample_steps"],
                seed=options["seed"],
                draw_banks=tuple(options["draw_banks"]),
            )
            grid = study_grid(
                tda_config(),
                learning_rates=options["lr"],
                steps=options["steps"],
                layer_groups=options["layer_groups"],
                masks=options["masks"],
                full=options["full_grid"],
            )
            kind = "full grid" if options["full_grid"] else "one factor at a time"
            self.stdout.write(f"{len(grid)} grid settings ({kind})")
            report = self_influence_study(
                model_version_id=options["model_version"],
                options=study,
                grid=grid,
                out=self.stdout.write,
            )
        except STUDY_ERRORS as exc:
            raise CommandError(getattr(exc, "message", None) or str(exc)) from exc
        self.stdout.write(f"Report: {report.directory}")
        for path in report.files:
            self.stdout.write(f"  {path.name}")
        self.stdout.write(f"Wall time {time.monotonic() - started:.1f} s")
