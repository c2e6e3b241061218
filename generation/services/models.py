"""Model versions: train the generator on recordings opted in to training, register and
activate checkpoints, reuse the committed demo checkpoint when its training set still holds.

Training pairs a crop of a recording with the CLAP embedding of another window of the same
recording (stored by `embed_catalogue`), so the model learns to generate in the style of
its references. The manifest records what each recording contributed (crops, padding) and
the consent versions in force, for training-time attribution and auxiliary royalties.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction

from catalog.audio.decoding import AudioDecodeError, file_sha256, load_mono
from catalog.encoders.captions import canonical_caption
from catalog.models import (
    CurrentConsent,
    EncoderVersion,
    Recording,
    RecordingWindowEmbedding,
    Use,
)
from catalog.selectors import recordings_permitting
from catalog.services.lineage import parent_manifest
from config.exceptions import Conflict, InvalidInput
from generation.model import (
    GeneratorConfig,
    GeneratorError,
    GeneratorTrainingItem,
    MelFrontend,
    TrainConfig,
    save_generator,
    train_generator,
    window_layout,
)
from generation.model.checkpoint import load_generator, read_checkpoint
from generation.models import ModelVersion

NAME = "default-dit"
ProgressCallback = Callable[[str, int, int, str], None]  # stage, done, total, note


def generator_training_recordings() -> list[Recording]:
    return list(
        recordings_permitting(use=Use.TRAINING).select_related("artist").order_by("content_sha256")
    )


_HOW_IT_RAN = {"device", "time_budget_seconds", "learning_rate", "warmup_steps"}


def training_fingerprint(
    recordings: list[Recording],
    encoder_version: EncoderVersion,
    config: GeneratorConfig,
    train: TrainConfig,
) -> str:
    """Identifies a training run's inputs: audio (by hash), conditioning encoder, configs."""
    payload = {
        "audio": sorted(r.content_sha256 for r in recordings),
        "encoder": encoder_version.checkpoint_sha256,
        # how it samples does not change what it learned (the checkpoint keeps its own)
        "model": {k: v for k, v in config.to_dict().items() if k != "sampler"},
        # where, how long and at what learning rate it ran do not change what it learned
        # from (a fine-tune from --parent at a lower rate is the same audio and settings)
        "training": {k: v for k, v in train.to_dict().items() if k not in _HOW_IT_RAN},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _consent_versions(recordings: list[Recording]) -> dict[int, list[int]]:
    versions: dict[int, list[int]] = {}
    pointers = CurrentConsent.objects.filter(recording__in=recordings).order_by("holder_id")
    for pointer in pointers:
        versions.setdefault(pointer.recording_id, []).append(pointer.version_id)
    return versions


def training_manifest(
    recordings: list[Recording],
    encoder_version: EncoderVersion,
    config: GeneratorConfig,
    train: TrainConfig,
    usage: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    consent = _consent_versions(recordings)
    usage = usage or {}
    return {
        "fingerprint": training_fingerprint(recordings, encoder_version, config, train),
        "encoder": {"version": str(encoder_version), "sha256": encoder_version.checkpoint_sha256},
        "model_config": config.to_dict(),
        "training_config": train.to_dict(),
        "recordings": [
            {
                "id": r.pk,
                "title": r.title,
                "artist": r.artist.name,
                "content_sha256": r.content_sha256,
                "duration_seconds": r.duration_seconds,
                "consent_version_ids": consent.get(r.pk, []),
                # the windows training-time attribution scores it by (all of its audio)
                "attribution_windows": window_layout(
                    config.mel.frames_for(float(r.duration_seconds)), config
                ),
                **usage.get(r.pk, {}),
            }
            for r in recordings
        ],
    }


def _logmel(recording: Recording, frontend: MelFrontend, config: GeneratorConfig) -> np.ndarray:
    """Log-mel of a whole recording, cached by audio hash and mel settings."""
    mel_key = hashlib.sha256(json.dumps(config.mel.to_dict(), sort_keys=True).encode()).hexdigest()
    cache = Path(settings.STATE_DIR) / "cache" / "generator-mels"
    path = cache / f"{recording.content_sha256[:24]}-{mel_key[:12]}.npy"
    if path.is_file():
        return np.load(path)
    try:
        audio = load_mono(Path(recording.audio_file.path), sample_rate=config.mel.sample_rate)
    except (AudioDecodeError, OSError) as exc:
        raise InvalidInput(f"recording {recording.pk} cannot be decoded: {exc}") from exc
    logmel = frontend.logmel(audio).astype(np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, logmel)
    return logmel


def _caption_metadata(recording: Recording) -> dict[str, Any]:
    return {
        "genre": recording.genre,
        "subgenre": recording.subgenre,
        "moods": recording.moods,
        "instruments": recording.instruments,
        "tempo_bpm": recording.tempo_bpm,
        "mode": recording.mode,
    }


def training_items(
    *,
    recordings: list[Recording],
    encoder_version: EncoderVersion,
    config: GeneratorConfig,
    on_progress: ProgressCallback | None = None,
) -> list[GeneratorTrainingItem]:
    """Decoded log-mels plus the stored window embeddings and caption embedding of each."""
    from catalog.retrieval.runtime import loaded_encoder

    windows: dict[int, list[tuple[float, np.ndarray]]] = {r.pk: [] for r in recordings}
    window_seconds: dict[int, float] = {}
    rows = (
        RecordingWindowEmbedding.objects.filter(recording__in=recordings, encoder=encoder_version)
        .order_by("recording_id", "start_seconds")
        .values_list("recording_id", "start_seconds", "window_seconds", "embedding")
    )
    for rid, start, length, vector in rows:
        windows[rid].append((float(start), np.asarray(vector, dtype=np.float32)))
        window_seconds[rid] = float(length)
    missing = [rid for rid, found in windows.items() if not found]
    if missing:
        raise Conflict(
            f"{len(missing)} training recordings have no {encoder_version} embeddings yet; "
            "run `python manage.py embed_catalogue` first",
            details={"recordings": missing[:20]},
        )
    captions = loaded_encoder(encoder_version).embed_texts(
        [canonical_caption(_caption_metadata(r)) for r in recordings]
    )
    frontend = MelFrontend(config.mel)
    items = []
    for n, (recording, caption) in enumerate(zip(recordings, captions, strict=True), 1):
        items.append(
            GeneratorTrainingItem(
                recording_id=recording.pk,
                logmel=_logmel(recording, frontend, config),
                windows=windows[recording.pk],
                window_seconds=window_seconds[recording.pk],
                caption_embedding=np.asarray(caption, dtype=np.float32),
            )
        )
        if on_progress:
            on_progress("decode", n, len(recordings), recording.title[:30])
    return items


@dataclass(frozen=True)
class TrainingOutcome:
    model_version: ModelVersion
    seconds: float
    final_loss: float


def generator_train(
    *,
    config: GeneratorConfig | None = None,
    train: TrainConfig | None = None,
    activate: bool = True,
    on_progress: ProgressCallback | None = None,
    parent_checkpoint: Path | None = None,
) -> TrainingOutcome:
    """Train a generator on every recording whose effective consent includes training.

    With `parent_checkpoint` the run fine-tunes that checkpoint (e.g. onto a new encoder's
    conditioning space) instead of starting from random weights. Its manifest must show it
    learned only from recordings that are still consented to training; the new manifest names
    it as the parent. The fingerprint does not include the parent: it says what the model was
    trained on, and the parent was trained on a subset of the same consented audio.
    """
    from catalog.retrieval.runtime import active_encoder_version

    config = config or GeneratorConfig()
    train = train or TrainConfig()
    encoder_version = active_encoder_version()
    recordings = generator_training_recordings()
    if len(recordings) < 2:
        raise InvalidInput(
            f"only {len(recordings)} recordings are opted in to model training; need at least 2"
        )
    parent, lineage = _parent(parent_checkpoint, recordings) if parent_checkpoint else (None, None)
    items = training_items(
        recordings=recordings,
        encoder_version=encoder_version,
        config=config,
        on_progress=on_progress,
    )

    def on_step(step: int, total: int, loss: float) -> None:
        if on_progress:
            on_progress("train", step, total, f"loss {loss:.4f}")

    started = time.monotonic()
    try:
        report = train_generator(items, config, train, progress=on_step, parent=parent)
    except GeneratorError as exc:
        raise InvalidInput(str(exc)) from exc
    seconds = time.monotonic() - started
    manifest = training_manifest(recordings, encoder_version, config, train, report.usage)
    if lineage:
        manifest["parent"] = lineage
    manifest["run"] = {
        "steps": report.steps_done,
        "seconds": round(seconds, 1),
        "final_loss": round(report.final_loss, 5),
        "stopped_early": report.stopped_early,  # at the time budget
        "device": report.device,
        "crop": report.crop_settings,
    }
    directory = Path(settings.GENERATOR_CHECKPOINT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{NAME}-training.pt"
    digest = save_generator(tmp, report.generator, {"fingerprint": manifest["fingerprint"]})
    path = directory / f"{NAME}-{digest[:12]}.pt"
    tmp.replace(path)
    path.with_suffix(".manifest.json").write_text(json.dumps(manifest, indent=1))
    version = model_version_register(
        checkpoint_path=path,
        encoder_version=encoder_version,
        training_manifest=manifest,
        activate=activate,
    )
    return TrainingOutcome(version, seconds, manifest["run"]["final_loss"])


def _parent(checkpoint: Path, recordings: list[Recording]) -> tuple[Any, dict[str, Any]]:
    """The parent generator and the lineage its child's manifest records; refuses a parent that
    learned from audio no longer consented to training (or cannot say what it learned from)."""
    manifest = parent_manifest(checkpoint, recordings)
    try:
        parent = load_generator(checkpoint, device="cpu")
    except (GeneratorError, OSError, ValueError) as exc:
        raise InvalidInput(f"{checkpoint} cannot be fine-tuned from: {exc}") from exc
    run = manifest.get("run", {})
    lineage = {
        "checkpoint": checkpoint.name,
        "checkpoint_sha256": file_sha256(checkpoint),
        "encoder": manifest.get("encoder", {}),
        "steps": run.get("steps"),
        "seconds": run.get("seconds"),
        "parent": manifest.get("parent"),
    }
    return parent, lineage


def model_version_register(
    *,
    checkpoint_path: Path,
    encoder_version: EncoderVersion,
    training_manifest: dict[str, Any],
    activate: bool = True,
) -> ModelVersion:
    """Register a checkpoint; its config (with the fitted normalisation) is read from it."""
    try:
        config = GeneratorConfig.from_dict(read_checkpoint(checkpoint_path)["config"])
    except (GeneratorError, KeyError) as exc:
        raise InvalidInput(f"{checkpoint_path} is not a generator checkpoint: {exc}") from exc
    digest = file_sha256(checkpoint_path)
    version, _ = ModelVersion.objects.get_or_create(
        name=NAME,
        version=digest[:12],
        defaults={
            "config": config.to_dict(),
            "checkpoint_path": str(checkpoint_path),
            "checkpoint_sha256": digest,
            "encoder": encoder_version,
            "training_manifest": training_manifest,
            "training_recording_ids": [r["id"] for r in training_manifest["recordings"]],
        },
    )
    if activate:
        model_version_activate(model_version=version)
    return version


def model_version_activate(*, model_version: ModelVersion) -> ModelVersion:
    with transaction.atomic():
        ModelVersion.objects.filter(is_active=True).exclude(pk=model_version.pk).update(
            is_active=False
        )
        ModelVersion.objects.filter(pk=model_version.pk).update(is_active=True)
    model_version.refresh_from_db()
    return model_version


def model_version_install_committed(
    *, checkpoint: Path, config: GeneratorConfig, train: TrainConfig
) -> ModelVersion | None:
    """Use a committed checkpoint if it was trained on exactly today's consented audio with
    today's encoder and settings; None means retrain. The manifest is rebuilt from the
    database (today's consent version ids) and keeps the committed run figures."""
    from catalog.retrieval.runtime import active_encoder_version

    manifest_path = checkpoint.with_suffix(".manifest.json")
    if not checkpoint.is_file() or not manifest_path.is_file():
        return None
    committed = json.loads(manifest_path.read_text())
    encoder_version = active_encoder_version()
    recordings = generator_training_recordings()
    if committed.get("fingerprint") != training_fingerprint(
        recordings, encoder_version, config, train
    ):
        return None
    target = Path(settings.GENERATOR_CHECKPOINT_DIR) / checkpoint.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or file_sha256(target) != file_sha256(checkpoint):
        shutil.copyfile(checkpoint, target)
    by_hash = {r["content_sha256"]: r for r in committed.get("recordings", [])}
    usage = {r.pk: _usage_of(by_hash.get(r.content_sha256, {})) for r in recordings}
    manifest = training_manifest(recordings, encoder_version, config, train, usage)
    manifest["run"] = committed.get("run", {})
    manifest["committed_checkpoint"] = checkpoint.name
    return model_version_register(
        checkpoint_path=target,
        encoder_version=encoder_version,
        training_manifest=manifest,
    )


_USAGE_KEYS = ("crops", "mean_crop_seconds", "padded_crops", "padded_frames")


def _usage_of(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in _USAGE_KEYS if k in entry}


def model_version_record_quality(*, model_version: ModelVersion, quality: dict[str, Any]) -> None:
    """Keep a measurement (e.g. audible conditioning) with the model version it describes."""
    ModelVersion.objects.filter(pk=model_version.pk).update(
        quality={**model_version.quality, **quality}
    )
    model_version.refresh_from_db(fields=["quality"])
