"""python manage.py bench_tda: what training-time attribution costs on this machine, against
the number of training windows.

For the active (or `--model-version`) generator and the platform's TDA settings: each stage is
timed per window on `--sample` windows spread over its whole-recording manifest (Fisher, index
build, one exact loss pass), the first-order query is timed against indexes of each size in
`--windows` ("all" = this model's manifest; larger sizes are synthetic: the product with the
index is timed on random features of that size), and the totals are printed with a
projection for `--recordings` recordings on a GPU (`--gpu-speedup`, an assumption unless
measured there). `--agreement` also runs the product's first-order attribution over the whole
manifest and an exact one with the same draws, and prints their Spearman correlation.
The query is a succeeded generation's sample (`--generation`, default the latest one of the
model version), else the first training window.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from django.core.management.base import BaseCommand, CommandError

from attribution.services.training import tda_config, tda_model_directory
from attribution.tda import AttributionRun, TDAError, fisher_file_name, spearman
from attribution.tda.benchmark import cost_table, measure_per_window
from attribution.tda.platform_model import PlatformTarget, platform_manifest
from config.exceptions import DomainError
from generation.selectors import active_model_version
from generation.services.attribution_inputs import (
    generated_sample,
    model_version_generator,
    model_version_training_items,
)


class Command(BaseCommand):
    help = "Time training-time attribution per stage against the number of training windows."

    def add_arguments(self, parser):
        add = parser.add_argument
        add("--model-version", type=int, help="default: the active one")
        add("--generation", help="query: this generation's sample")
        add("--windows", default="60,600,1500,all,15000", help="index sizes to cost")
        add("--sample", type=int, default=16, help="windows each stage is timed on")
        add("--recordings", type=int, default=100_000, help="catalogue size to project to")
        add(
            "--gpu-speedup", type=float, default=100.0,
            help="assumed GPU throughput over this machine's for the projection",
        )  # fmt: skip
        add(
            "--agreement", action="store_true",
            help="first order vs exact over the whole manifest (slow: builds the index)",
        )  # fmt: skip
        add("--device", default=None, help="auto, cpu or cuda (default: setting)")
        add("--json", action="store_true", help="print the raw figures as JSON")

    def handle(self, *args, **options):
        try:
            version_id = options["model_version"] or active_model_version().pk
            generator = model_version_generator(model_version_id=version_id)
            items = model_version_training_items(model_version_id=version_id)
            config = tda_config()
            if options["device"]:
                config = type(config).from_dict(config.to_dict() | {"device": options["device"]})
            target = PlatformTarget(generator.config)
            manifest = platform_manifest(items, generator.config, coverage="whole")
            query, ref = self._query(target, manifest, version_id, options["generation"])
            sizes = self._sizes(options["windows"], len(manifest))
        except (DomainError, TDAError) as exc:
            raise CommandError(getattr(exc, "message", str(exc))) from exc
        per_recording = len(manifest) / len(items)
        self.stdout.write(
            f"model version {version_id}: {len(items)} training recordings as {len(manifest)} "
            f"windows of {generator.config.dit.max_seconds:g} s ({per_recording:.1f} per "
            f"recording); device {config.resolve_device()}, torch threads "
            f"{torch.get_num_threads()}; Fisher over "
            f"{config.fisher_items or 'all'} windows x {config.fisher_timesteps} draws; index "
            f"{config.loss_draw_banks} banks x {config.loss_timesteps} draws, "
            f"{config.projection_dim} dims; query {config.unlearn_timesteps} draws"
        )
        try:
            costs, index = measure_per_window(
                target, generator.model, manifest, query, config, sample=options["sample"]
            )
        except TDAError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"per window ({costs.sample} timed): Fisher {costs.fisher_per_window:.3f} s, index "
            f"{costs.index_per_window:.3f} s, exact loss pass {costs.loss_pass_per_window:.3f} "
            f"s; per query: gradient {costs.query_gradient:.2f} s, update "
            f"{costs.unlearn_update:.2f} s, regime check {costs.regime_check:.2f} s"
        )
        rows = cost_table(costs, index, sizes, config)
        self.stdout.write(
            f"{'windows':>8} {'Fisher s':>9} {'index s':>9} {'index MiB':>9} "
            f"{'query s':>8} {'exact s':>9} {'speed-up':>8}"
        )
        for row in rows:
            self.stdout.write(
                f"{row['windows']:>8} {row['fisher_s']:>9.0f} {row['index_s']:>9.0f} "
                f"{row['index_mib']:>9.0f} {row['first_order_query_s']:>8.2f} "
                f"{row['exact_query_s']:>9.1f} {row['speedup']:>7.0f}x"
            )
        projection = self._projection(costs, config, per_recording, options)
        self.stdout.write(projection["text"])
        figures = {"costs": costs.to_dict(), "rows": rows, "projection": projection}
        if options["agreement"]:
            figures["agreement"] = self._agreement(
                target, generator, manifest, query, ref, config, version_id
            )
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=1))

    def _projection(self, costs, config, per_recording: float, options) -> dict:
        recordings, speed = options["recordings"], options["gpu_speedup"]
        windows = int(recordings * per_recording)
        fisher = (config.fisher_items or windows) * costs.fisher_per_window / speed
        index = windows * costs.index_per_window / speed
        gib = windows * config.loss_draw_banks * config.projection_dim * 2 / 2**30  # float16
        text = (
            f"projection, {recordings:,} recordings = {windows:,} windows on one GPU at an "
            f"assumed {speed:g}x this machine: Fisher {fisher / 60:.1f} min, index "
            f"{index / 3600:.1f} h once per model version ({gib:.0f} GiB in float16), a query "
            f"about {(costs.query_gradient + costs.regime_check) / speed:.2f} s plus a "
            f"{windows:,} x {config.projection_dim} product"
        )
        return {
            "recordings": recordings, "windows": windows, "gpu_speedup": speed,
            "fisher_s": fisher, "index_s": index, "index_gib_float16": gib, "text": text,
        }  # fmt: skip

    def _agreement(self, target, generator, manifest, query, ref, config, version_id) -> dict:
        from generation.models import ModelVersion

        checkpoint = ModelVersion.objects.get(pk=version_id).checkpoint_sha256
        shared = tda_model_directory(checkpoint)
        key = ref or "bench-training-window"
        with tempfile.TemporaryDirectory() as scratch:

            def run(cfg, name):
                return AttributionRun(
                    Path(scratch) / name, target=target, model=generator.model,
                    manifest=manifest, query=query, config=cfg, model_version=checkpoint,
                    query_key=key,
                    fisher_path=shared / fisher_file_name(checkpoint, manifest.digest, cfg),
                    cache_dir=shared / "losses",
                )  # fmt: skip

            started = time.monotonic()
            first = run(config, "first").run()
            first_s = time.monotonic() - started
            exact_config = replace(config, method="exact", regime_probe_items=0)
            exact_run = run(exact_config, "exact")
            started = time.monotonic()
            exact = exact_run.run()
            exact_s = time.monotonic() - started
        bank = exact_run.bank
        same_draws = first.replicates[0][:, bank]  # first order with the exact run's draws
        figures = {
            "windows": len(manifest),
            "spearman_same_draws": spearman(exact.scores, same_draws),
            "spearman_all_banks": spearman(exact.scores, first.scores),
            "pearson_same_draws": float(np.corrcoef(exact.scores, same_draws)[0, 1]),
            "first_order_run_s": first_s,
            "exact_run_s": exact_s,
            "timings": first.stages.get("timings", {}),
        }
        self.stdout.write(
            f"agreement over all {len(manifest)} windows: Spearman exact vs first order "
            f"{figures['spearman_same_draws']:.3f} with the same draws (Pearson "
            f"{figures['pearson_same_draws']:.4f}), {figures['spearman_all_banks']:.3f} vs the "
            f"4-bank mean; runs {first_s:.0f} s (first order, incl. any index build) and "
            f"{exact_s:.0f} s (exact)"
        )
        return figures

    def _query(self, target, manifest, version_id: int, generation_ref: str | None):
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
            self.stdout.write("no generation of this model version yet: query = training window 1")
            return target.example(manifest.items[0]), None
        sample = generated_sample(generation_ref=generation_ref)
        self.stdout.write(f"query: generation {generation_ref}")
        example = target.query_example(sample.logmel, target.spec_conditioning(sample.spec))
        return example, generation_ref

    @staticmethod
    def _sizes(text: str, total: int) -> list[int]:
        sizes = []
        for part in text.split(","):
            part = part.strip()
            size = total if part == "all" else int(part) if part.isdigit() else -1
            if size < 1:
                raise CommandError(f"--windows takes positive integers or 'all', got {part!r}")
            sizes.append(size)
        return sorted(set(sizes))
