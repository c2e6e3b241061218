"""python manage.py bench_generation: real-time factor of the served generator."""

from __future__ import annotations

from pathlib import Path

import torch
from django.core.management.base import BaseCommand, CommandError

from config.exceptions import DomainError
from generation.model import GeneratorError, load_generator
from generation.model.benchmark import measure_real_time_factor
from generation.selectors import active_model_version


class Command(BaseCommand):
    help = "Time generating N seconds of audio with default sampler settings; print the RTF."

    def add_arguments(self, parser):
        parser.add_argument("--seconds", type=float, default=10.0)
        parser.add_argument("--repeats", type=int, default=3)
        parser.add_argument("--checkpoint", type=Path, help="default: the active model version")
        parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")

    def handle(self, *args, **options):
        if options["threads"]:
            torch.set_num_threads(options["threads"])
        try:
            path = options["checkpoint"] or Path(active_model_version().checkpoint_path)
            generator = load_generator(path)
        except (DomainError, GeneratorError) as exc:
            raise CommandError(getattr(exc, "message", str(exc))) from exc
        figures = measure_real_time_factor(
            generator, seconds=options["seconds"], repeats=options["repeats"]
        )
        self.stdout.write(
            f"{path.name} on {generator.device}, {torch.get_num_threads()} threads: "
            + ", ".join(f"{k} {v}" for k, v in figures.items())
        )
