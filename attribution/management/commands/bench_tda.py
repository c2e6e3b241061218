"""python manage.py bench_tda: throughput of training-time attribution on this machine.

For the active (or `--model-version`) generator and the platform's TDA settings, times every
stage on the first N items of its training manifest for each N in `--sizes`: Fisher, one
unlearning, a query's scoring with and without theta0's cached losses, and (with `--fast`)
the fast path. The query is a succeeded generation's sample (`--generation`, default the most
recent one of this model version), else the first training item. Prints a table; the items/s
column is what sizes a deployment, the last row shows how time grows with the manifest.
"""

from __future__ import annotations

import json

import torch
from django.core.management.base import BaseCommand, CommandError

from attribution.services.training import tda_config
from attribution.tda import TDAError
from attribution.tda.benchmark import measure_stages
from attribution.tda.platform_model import PlatformTarget, platform_manifest
from config.exceptions import DomainError
from generation.selectors import active_model_version
from generation.services.attribution_inputs import (
    generated_sample,
    model_version_generator,
    model_version_training_items,
)


class Command(BaseCommand):
    help = "Time the TDA stages (items/s, cache saving, scaling with manifest size)."

    def add_arguments(self, parser):
        parser.add_argument("--model-version", type=int, help="default: the active one")
        parser.add_argument("--generation", help="query: this generation's sample")
        parser.add_argument("--sizes", default="8,16,32,all", help="manifest sizes to time")
        parser.add_argument("--fast", action="store_true", help="also time the fast path")
        parser.add_argument("--device", default=None, help="auto, cpu or cuda (default: setting)")
        parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")

    def handle(self, *args, **options):
        try:
            version_id = options["model_version"] or active_model_version().pk
            generator = model_version_generator(model_version_id=version_id)
            items = model_version_training_items(model_version_id=version_id)
            config = tda_config()
            if options["device"]:
                config = type(config).from_dict(config.to_dict() | {"device": options["device"]})
            target = PlatformTarget(generator.config)
            query = self._query(target, items, version_id, options["generation"])
            sizes = self._sizes(options["sizes"], len(items))
        except (DomainError, TDAError) as exc:
            raise CommandError(getattr(exc, "message", str(exc))) from exc

        device = config.resolve_device()
        self.stdout.write(
            f"model version {version_id}, {len(items)} training items, device {device}, "
            f"torch threads {torch.get_num_threads()}, loss draws {config.loss_timesteps}, "
            f"Fisher draws {config.fisher_timesteps}, unlearning draws {config.unlearn_timesteps}"
        )
        header = (
            f"{'items':>5}  {'fisher s':>8}  {'fisher it/s':>11}  {'unlearn s':>9}  "
            f"{'score s':>8}  {'cached s':>8}  {'loss it/s':>9}  {'cache x':>7}  {'query s':>7}"
        )
        if options["fast"]:
            header += f"  {'fast s':>7}  {'fast x':>6}"
        self.stdout.write(header)
        rows = []
        for size in sizes:
            manifest = platform_manifest(items[:size], generator.config, coverage="first")
            try:
                row = measure_stages(
                    target, generator.model, manifest, query, config, fast=options["fast"]
                )
            except TDAError as exc:
                raise CommandError(str(exc)) from exc
            rows.append(row)
            line = (
                f"{size:>5}  {row['fisher_s']:>8.1f}  {row['fisher_items_per_s']:>11.2f}  "
                f"{row['unlearn_s']:>9.2f}  {row['score_uncached_s']:>8.1f}  "
                f"{row['score_cached_s']:>8.1f}  {row['loss_items_per_s']:>9.2f}  "
                f"{row['cache_speedup']:>7.2f}  {row['exact_query_s']:>7.1f}"
            )
            if options["fast"]:
                line += f"  {row['fast_query_s']:>7.2f}  {row['fast_speedup']:>6.1f}"
            self.stdout.write(line)
        if len(rows) > 1:
            first, last = rows[0], rows[-1]
            self.stdout.write(
                f"{last['items'] / first['items']:.1f}x the items: query time "
                f"x{last['exact_query_s'] / first['exact_query_s']:.2f}, Fisher "
                f"x{last['fisher_s'] / first['fisher_s']:.2f}"
            )
        if options["json"]:
            for row in rows:
                row.pop("config", None)
            self.stdout.write(json.dumps(rows, indent=1))

    def _query(self, target, items, version_id: int, generation_ref: str | None):
        from generation.models import GenerationRequest

        if generation_ref is None:
            latest = (
                GenerationRequest.objects.filter(model_version_id=version_id, status="succeeded")
                .exclude(sample="")
                .order_by("-finished_at")
                .first()
            )
            generation_ref = latest.ref if latest else None
        if generation_ref is None:
            self.stdout.write("no generation of this model version yet: query = training item 1")
            return target.example(items[0])
        sample = generated_sample(generation_ref=generation_ref)
        self.stdout.write(f"query: generation {generation_ref}")
        return target.query_example(sample.logmel, target.spec_conditioning(sample.spec))

    @staticmethod
    def _sizes(text: str, total: int) -> list[int]:
        sizes = []
        for part in text.split(","):
            part = part.strip()
            size = total if part == "all" else int(part) if part.isdigit() else -1
            if size < 1:
                raise CommandError(f"--sizes takes positive integers or 'all', got {part!r}")
            sizes.append(min(size, total))
        return sorted(set(sizes))
