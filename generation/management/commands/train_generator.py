"""python manage.py train_generator: train the reference-conditioned generator on consented
recordings and register it as the served model version."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from config.exceptions import DomainError
from generation.model import GeneratorConfig, GeneratorError, TrainConfig
from generation.model.checkpoint import file_sha256
from generation.models import ModelVersion
from generation.services.models import (
    generator_train,
    generator_training_recordings,
    model_version_install_committed,
    training_fingerprint,
)

COMMITTED_CHECKPOINT = (
    Path(__file__).resolve().parents[2] / "model" / "pretrained" / "default-dit-demo.pt"
)


class Command(BaseCommand):
    help = (
        "Train the diffusion-transformer generator on every recording opted in to model "
        "training (crops conditioned on CLAP embeddings of other crops of the same recording), "
        "register it with its training manifest and make it the served model."
    )

    def add_arguments(self, parser):
        defaults = TrainConfig()
        parser.add_argument("--steps", type=int, help=f"default {defaults.steps}")
        parser.add_argument("--batch-size", type=int, help=f"default {defaults.batch_size}")
        parser.add_argument(
            "--learning-rate",
            type=float,
            help=f"peak learning rate (default {defaults.learning_rate:g}); a fine-tune "
            "(--parent) usually wants a lower one, or re-warming undoes what the parent learned",
        )
        parser.add_argument("--warmup-steps", type=int, help=f"default {defaults.warmup_steps}")
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument(
            "--time-budget",
            type=float,
            help=f"minutes (default {defaults.time_budget_seconds / 60:g}); the cosine schedule "
            "is compressed to fit, and 0 means no budget",
        )
        parser.add_argument("--device", default=defaults.device, help="auto, cpu or cuda")
        parser.add_argument("--model-config", type=Path, help="JSON of GeneratorConfig fields")
        parser.add_argument(
            "--tiny", action="store_true", help="tiny model and a few steps (tests, smoke runs)"
        )
        parser.add_argument(
            "--parent",
            type=Path,
            help="fine-tune this checkpoint (its .manifest.json beside it) instead of starting "
            "from random weights, e.g. onto a new encoder's conditioning",
        )
        parser.add_argument("--no-activate", action="store_true")
        parser.add_argument(
            "--export", type=Path, help="also copy checkpoint + manifest to this path (.pt)"
        )
        parser.add_argument(
            "--if-needed",
            action="store_true",
            help="do nothing if the active model was trained on today's consented audio with "
            "these settings; else install --committed if it matches; else train",
        )
        parser.add_argument(
            "--committed", type=Path, default=COMMITTED_CHECKPOINT, help="checkpoint to reuse"
        )

    def handle(self, *args, **options):
        try:
            config, train = self._configs(options)
        except (GeneratorError, OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        if options["if_needed"] and self._reuse(config, train, options["committed"]):
            return

        bars: dict[str, tqdm] = {}

        def on_progress(stage: str, done: int, total: int, note: str) -> None:
            bar = bars.get(stage)
            if bar is None:
                unit = "step" if stage == "train" else "rec"
                bar = bars[stage] = tqdm(total=total, desc=stage, unit=unit)
            bar.set_postfix_str(note, refresh=False)
            bar.update(done - bar.n)

        try:
            outcome = generator_train(
                config=config,
                train=train,
                activate=not options["no_activate"],
                on_progress=on_progress,
                parent_checkpoint=options["parent"],
            )
        except (DomainError, GeneratorError) as exc:
            raise CommandError(getattr(exc, "message", str(exc))) from exc
        finally:
            for bar in bars.values():
                bar.close()

        version = outcome.model_version
        run = version.training_manifest["run"]
        self.stdout.write(
            f"Generator {version} trained on {len(version.training_recording_ids)} recordings: "
            f"{run['steps']} steps in {run['seconds']} s on {run['device']}, "
            f"final loss {run['final_loss']}"
            + (" (stopped at the time budget)" if run.get("stopped_early") else "")
        )
        self.stdout.write(f"checkpoint: {version.checkpoint_path}")
        if options["export"]:
            export = options["export"]
            export.parent.mkdir(parents=True, exist_ok=True)
            export.write_bytes(Path(version.checkpoint_path).read_bytes())
            export.with_suffix(".manifest.json").write_text(
                json.dumps(version.training_manifest, indent=1)
            )
            self.stdout.write(f"exported to {export}")

    def _configs(self, options) -> tuple[GeneratorConfig, TrainConfig]:
        if options["tiny"]:
            config, train = GeneratorConfig.tiny(), TrainConfig.tiny()
        else:
            config, train = GeneratorConfig(), TrainConfig()
        if options["model_config"]:
            config = GeneratorConfig.from_dict(json.loads(options["model_config"].read_text()))
        values = train.to_dict()
        values.update(seed=options["seed"], device=options["device"])
        for name in ("steps", "batch_size", "learning_rate", "warmup_steps"):
            if options[name] is not None:
                values[name] = options[name]
        if options["time_budget"] is not None:
            values["time_budget_seconds"] = options["time_budget"] * 60 or None
        return config, TrainConfig.from_dict(values)

    def _reuse(self, config: GeneratorConfig, train: TrainConfig, committed: Path) -> bool:
        from catalog.retrieval.runtime import active_encoder_version

        current = training_fingerprint(
            generator_training_recordings(), active_encoder_version(), config, train
        )
        active = ModelVersion.objects.filter(is_active=True).first()
        if active and active.training_manifest.get("fingerprint") == current:
            superseded = (  # the committed file changed since it was installed (e.g. sampler)
                active.training_manifest.get("committed_checkpoint") == committed.name
                and committed.is_file()
                and active.checkpoint_sha256 != file_sha256(committed)
            )
            if not superseded:
                self.stdout.write(f"Generator {active} is up to date with the consented catalogue.")
                return True
            self.stdout.write(f"{committed.name} changed since {active} was installed from it.")
        installed = model_version_install_committed(
            checkpoint=committed, config=config, train=train
        )
        if installed:
            self.stdout.write(
                f"Generator {installed} installed from {committed.name} (trained on the same "
                "consented audio); no training needed."
            )
            return True
        self.stdout.write(
            "The consented catalogue differs from the committed generator's: training."
        )
        return False
