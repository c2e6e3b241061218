"""python manage.py train_encoder: train the default CLAP encoder on consented recordings."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.encoders import EncoderError
from catalog.encoders.augment import AugmentSettings
from catalog.encoders.default_clap import NAME as DEFAULT_NAME
from catalog.encoders.default_clap import DefaultClapConfig
from catalog.encoders.training import TrainingConfig
from catalog.models import EncoderVersion
from catalog.services.encoders import (
    encoder_install_committed,
    encoder_train,
    encoder_training_recordings,
    fits_consented_audio,
)
from config.exceptions import DomainError

COMMITTED_CHECKPOINT = (
    Path(__file__).resolve().parents[2] / "encoders" / "pretrained" / "default-clap-demo.pt"
)


class Command(BaseCommand):
    help = (
        "Train the default audio-text encoder (compact CLAP) on every recording opted in to "
        "model training, register it as an encoder version and print held-out recall."
    )

    def add_arguments(self, parser):
        defaults = TrainingConfig()
        parser.add_argument("--steps", type=int, default=defaults.steps)
        parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
        parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
        parser.add_argument(
            "--time-budget", type=float, default=13 * 60, help="seconds; stop early past it"
        )
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument(
            "--augment",
            action=argparse.BooleanOptionalAction,
            default=defaults.augment is not None,
            help="augmented second views (speed, stretch, noise, splice) in the audio-audio loss",
        )
        parser.add_argument(
            "--pseudo-tags",
            action=argparse.BooleanOptionalAction,
            default=defaults.pseudo_tags,
            help="musicnn's tags of each recording in its sampled training captions",
        )
        parser.add_argument("--model-config", type=Path, help="JSON of DefaultClapConfig fields")
        parser.add_argument("--no-activate", action="store_true")
        parser.add_argument(
            "--parent",
            type=Path,
            help="fine-tune from this checkpoint (its .manifest.json beside it) instead of new "
            "weights; the steps and learning rate are this run's",
        )
        parser.add_argument(
            "--export", type=Path, help="also copy checkpoint + manifest to this path (.pt)"
        )
        parser.add_argument(
            "--if-needed",
            action="store_true",
            help="do nothing if the active encoder was trained on today's consented audio with "
            "these settings; else use --committed if it matches; else train",
        )
        parser.add_argument(
            "--committed", type=Path, default=COMMITTED_CHECKPOINT, help="checkpoint to reuse"
        )

    def handle(self, *args, **options):
        try:
            model_config = DefaultClapConfig.from_dict(
                json.loads(options["model_config"].read_text()) if options["model_config"] else {}
            )
            training_config = TrainingConfig(
                steps=options["steps"],
                batch_size=options["batch_size"],
                learning_rate=options["learning_rate"],
                time_budget_seconds=options["time_budget"],
                seed=options["seed"],
                augment=AugmentSettings() if options["augment"] else None,
                pseudo_tags=options["pseudo_tags"],
            )
        except (EncoderError, OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc

        if options["if_needed"]:
            reused = self._reuse(model_config, training_config, options["committed"])
            if reused:
                return

        bars: dict[str, tqdm] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            key = stage.split(" ")[0]
            bar = bars.get(key)
            if bar is None:
                bar = bars[key] = tqdm(
                    total=total, desc=key, unit="step" if key == "train" else "rec"
                )
            bar.set_postfix_str(stage[len(key) :].strip(" ()"), refresh=False)
            bar.update(done - bar.n)

        try:
            version = encoder_train(
                model_config=model_config,
                training_config=training_config,
                activate=not options["no_activate"],
                on_progress=on_progress,
                parent_checkpoint=options["parent"],
            )
        except (DomainError, EncoderError) as exc:
            raise CommandError(getattr(exc, "message", str(exc))) from exc
        finally:
            for bar in bars.values():
                bar.close()

        run = version.training_manifest.get("run", {})
        self.stdout.write(
            f"Encoder {version} trained on {len(version.training_manifest['recordings'])} "
            f"recordings: {run.get('steps_done')} steps in {run.get('seconds')} s"
            + (" (stopped at the time budget)" if run.get("stopped_early") else "")
        )
        self.stdout.write(quality_report(version.quality))
        self.stdout.write(f"checkpoint: {version.checkpoint_path}")
        if options["export"]:
            export = options["export"]
            export.parent.mkdir(parents=True, exist_ok=True)
            source = Path(version.checkpoint_path)
            export.write_bytes(source.read_bytes())
            export.with_suffix(".manifest.json").write_text(
                json.dumps(version.training_manifest, indent=1)
            )
            self.stdout.write(f"exported to {export}")

    def _reuse(self, model_config, training_config, committed: Path) -> bool:
        recordings = encoder_training_recordings()
        active = EncoderVersion.objects.filter(is_active=True, name=DEFAULT_NAME).first()
        if active and fits_consented_audio(
            active.training_manifest, recordings, model_config, training_config
        ):
            self.stdout.write(f"Encoder {active} is up to date with the consented catalogue.")
            return True
        installed = encoder_install_committed(
            checkpoint=committed, model_config=model_config, training_config=training_config
        )
        if installed:
            self.stdout.write(
                f"Encoder {installed} installed from {committed.name} (trained on the same "
                "consented audio); no training needed."
            )
            self.stdout.write(quality_report(installed.quality))
            return True
        self.stdout.write("The consented catalogue differs from the committed encoder's: training.")
        return False


def quality_report(quality: dict) -> str:
    if "text_to_audio_recall_at_1" not in quality:
        return f"held-out evaluation: {quality.get('note', 'not available')}"
    q = quality
    return (
        f"Held-out quality ({q['held_out_clips']} clips of {q['held_out_recordings']} recordings, "
        f"{q['distinct_captions']} distinct captions):\n"
        f"  text->audio recall@1   {q['text_to_audio_recall_at_1']:.3f}"
        f"   (chance {q['text_to_audio_chance_at_1']:.3f})\n"
        f"  text->audio recall@10  {q['text_to_audio_recall_at_10']:.3f}"
        f"   (chance {q['text_to_audio_chance_at_10']:.3f})\n"
        f"  clip->recording recall@1 {q['clip_to_recording_recall_at_1']:.3f}"
        f" (chance {q['clip_to_recording_chance_at_1']:.3f})"
        + "".join(
            f"\n  prompt {prompt!r}: {share:.1f} of the top 5 fit"
            for prompt, share in q.get("prompt_probes", {}).items()
        )
    )
