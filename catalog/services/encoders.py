"""Encoder versions: train the default encoder on consented recordings, register checkpoints
(the committed demo checkpoint, a real LAION-CLAP checkpoint), choose the active one.

The encoder is an auxiliary model (seed 004 section 7): it learns only from recordings whose
effective consent includes model training, and its manifest lists them with the consent
versions in force, so the royalty side can pay their holders and a revocation is detectable.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from catalog.audio.decoding import AudioDecodeError, file_sha256, load_mono
from catalog.encoders import EncoderError, is_audio_only, load_encoder
from catalog.encoders.default_clap import NAME as DEFAULT_NAME
from catalog.encoders.default_clap import DefaultClapConfig, FrozenSentenceEncoder, save_checkpoint
from catalog.encoders.pseudo_tags import PseudoTagSettings, pseudo_tags
from catalog.encoders.training import TrainingConfig, TrainingItem, train_default_clap
from catalog.models import CurrentConsent, EncoderVersion, Recording, Use
from catalog.selectors import recordings_permitting
from catalog.services.lineage import parent_manifest
from config.exceptions import InvalidInput

ProgressCallback = Callable[[str, int, int], None]


def encoder_training_recordings() -> list[Recording]:
    return list(
        recordings_permitting(use=Use.TRAINING).select_related("artist").order_by("content_sha256")
    )


# Training settings added after checkpoints were committed: left out of the fingerprint while
# off, so a checkpoint trained before they existed still matches the settings it was made with.
_ADDED_LATER = ("augment", "pseudo_tags")


def training_fingerprint(
    recordings: list[Recording],
    model_config: DefaultClapConfig,
    training_config: TrainingConfig,
    parent_fingerprint: str | None = None,
) -> str:
    """Identifies a training run's inputs: the audio (by content hash), the configs and, for a
    fine-tuning run, the fingerprint of the run it started from."""
    payload = {
        "audio": sorted(r.content_sha256 for r in recordings),
        "model": model_config.to_dict(),
        "training": {
            k: v
            for k, v in training_config.to_dict().items()
            if k != "time_budget_seconds" and not (k in _ADDED_LATER and not v)
        },
    }
    if parent_fingerprint:
        payload["parent"] = parent_fingerprint
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def training_manifest(
    recordings: list[Recording],
    model_config: DefaultClapConfig,
    training_config: TrainingConfig,
    parent: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a version learned from; `parent` is the lineage of a fine-tuning run's start."""
    consent_versions: dict[int, list[int]] = {}
    for pointer in CurrentConsent.objects.filter(recording__in=recordings).order_by("holder_id"):
        consent_versions.setdefault(pointer.recording_id, []).append(pointer.version_id)
    manifest = {
        "fingerprint": training_fingerprint(
            recordings, model_config, training_config, (parent or {}).get("fingerprint")
        ),
        "model_config": model_config.to_dict(),
        "training_config": training_config.to_dict(),
        "recordings": [
            {
                "id": r.pk,
                "title": r.title,
                "artist": r.artist.name,
                "content_sha256": r.content_sha256,
                "consent_version_ids": consent_versions.get(r.pk, []),
            }
            for r in recordings
        ],
    }
    if parent:
        manifest["parent"] = parent
    return manifest


def fits_consented_audio(
    manifest: dict[str, Any],
    recordings: list[Recording],
    model_config: DefaultClapConfig,
    training_config: TrainingConfig,
) -> bool:
    """Whether a checkpoint's manifest says it was trained on exactly `recordings` with these
    settings: directly, or as one fine-tuning run (its own settings recorded) from a run that
    was. A retrain after a consent change starts afresh with these settings."""
    fingerprint = manifest.get("fingerprint")
    default_run = training_fingerprint(recordings, model_config, training_config)
    if fingerprint == default_run:
        return True
    parent = manifest.get("parent") or {}
    if parent.get("parent") or parent.get("fingerprint") != default_run:
        return False
    try:
        stage = TrainingConfig.from_dict(manifest.get("training_config", {}))
    except (EncoderError, TypeError):
        return False
    return fingerprint == training_fingerprint(
        recordings, model_config, stage, parent["fingerprint"]
    )


def _metadata(recording: Recording) -> dict[str, Any]:
    return {
        "genre": recording.genre,
        "subgenre": recording.subgenre,
        "moods": recording.moods,
        "instruments": recording.instruments,
        "tempo_bpm": recording.tempo_bpm,
        "mode": recording.mode,
    }


class _PseudoTags:
    """Pseudo-tags of recordings' training parts, cached by audio hash (tagging 60 recordings
    takes minutes; the audio, the holdout and the tagger settings fix the answer)."""

    def __init__(self, holdout_fraction: float) -> None:
        from catalog.encoders.musicnn import MusicnnEmbedder

        self.holdout_fraction = holdout_fraction
        self.settings = PseudoTagSettings()
        self.tagger = MusicnnEmbedder(self.settings.model)
        try:
            self.tagger.labels  # noqa: B018 - finds the package and labels before any audio work
        except EncoderError as exc:
            raise InvalidInput(
                f"pseudo-tags need musicnn's weights ({exc}); run `make install`, or train with "
                "--no-pseudo-tags"
            ) from exc
        self.path = Path(settings.ENCODER_CHECKPOINT_DIR) / "pseudo-tags.json"
        try:
            self.cache = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.cache = {}
        self.prefix = hashlib.sha256(
            json.dumps([asdict(self.settings), holdout_fraction]).encode()
        ).hexdigest()[:12]

    def of(self, recording: Recording, audio, sample_rate: int) -> list[str]:
        key = f"{self.prefix}:{recording.content_sha256}"
        if key not in self.cache:  # heard on the training part only, never the held-out tail
            trained = audio[: max(1, int(len(audio) * (1 - self.holdout_fraction)))]
            self.cache[key] = pseudo_tags(trained, sample_rate, self.tagger, self.settings)
        return list(self.cache[key])

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.cache, indent=0, sort_keys=True))


def _training_items(
    recordings: list[Recording],
    sample_rate: int,
    tags: _PseudoTags | None = None,
    on_progress: ProgressCallback | None = None,
) -> list[TrainingItem]:
    items = []
    for n, recording in enumerate(recordings, 1):
        try:
            audio = load_mono(Path(recording.audio_file.path), sample_rate=sample_rate)
        except AudioDecodeError as exc:
            raise InvalidInput(f"recording {recording.pk} cannot be decoded: {exc}") from exc
        metadata = _metadata(recording)
        if tags is not None:
            metadata["tags"] = tags.of(recording, audio, sample_rate)
        items.append(TrainingItem(str(recording.pk), audio, metadata))
        if on_progress:
            on_progress("decode and tag" if tags else "decode", n, len(recordings))
    if tags is not None:
        tags.save()
    return items


def encoder_evaluate(
    *, encoder_version: EncoderVersion, on_progress: ProgressCallback | None = None
) -> dict[str, Any]:
    """The held-out report of `train_encoder` for any default-clap version, on today's training
    recordings with the default holdout: how encoders trained differently compare."""
    from catalog.encoders.evaluation import held_out_quality

    if encoder_version.name != DEFAULT_NAME:
        raise InvalidInput(f"only {DEFAULT_NAME} versions have a held-out report to recompute")
    try:
        encoder = load_encoder(encoder_version.name, encoder_version.checkpoint_path)
    except EncoderError as exc:
        raise InvalidInput(str(exc)) from exc
    recordings = encoder_training_recordings()
    if len(recordings) < 4:
        raise InvalidInput(f"only {len(recordings)} recordings are opted in to model training")
    items = _training_items(recordings, encoder.config.sample_rate, on_progress=on_progress)
    return held_out_quality(
        encoder.audio_tower, encoder.text_projection, items, encoder.config, TrainingConfig()
    )


def encoder_train(
    *,
    model_config: DefaultClapConfig | None = None,
    training_config: TrainingConfig | None = None,
    activate: bool = True,
    on_progress: ProgressCallback | None = None,
    parent_checkpoint: Path | None = None,
) -> EncoderVersion:
    """Train the default encoder on every recording whose consent allows training; from the
    weights of `parent_checkpoint` (fine-tuning) when given."""
    model_config = model_config or DefaultClapConfig()
    training_config = training_config or TrainingConfig()
    recordings = encoder_training_recordings()
    if len(recordings) < 4:
        raise InvalidInput(
            f"only {len(recordings)} recordings are opted in to model training; need at least 4"
        )
    parent, lineage = (
        _parent(parent_checkpoint, recordings, model_config) if parent_checkpoint else (None, None)
    )
    text_model_sha256 = FrozenSentenceEncoder().weights_sha256()  # fail before training, not after
    tags = _PseudoTags(training_config.holdout_fraction) if training_config.pseudo_tags else None
    items = _training_items(recordings, model_config.sample_rate, tags, on_progress)

    def on_step(step: int, total: int, loss: float) -> None:
        if on_progress:
            on_progress(f"train (loss {loss:.3f})", step, total)

    result = train_default_clap(
        items,
        model_config=model_config,
        training_config=training_config,
        on_step=on_step,
        parent=parent,
    )
    manifest = training_manifest(recordings, model_config, training_config, lineage)
    for entry, item in zip(manifest["recordings"], items, strict=True):
        if "tags" in item.metadata:
            entry["pseudo_tags"] = item.metadata["tags"]
    manifest["run"] = {
        "steps_done": result.steps_done,
        "seconds": round(result.seconds, 1),
        "final_loss": result.final_loss,
        "stopped_early": result.stopped_early,
    }
    manifest["quality"] = result.quality
    directory = Path(settings.ENCODER_CHECKPOINT_DIR)
    tmp = directory / f"{DEFAULT_NAME}-training.pt"
    digest = save_checkpoint(
        tmp,
        config=model_config,
        audio_tower=result.audio_tower,
        text_projection=result.text_projection,
        text_model_sha256=text_model_sha256,
        extra={"quality": result.quality, "fingerprint": manifest["fingerprint"]},
    )
    path = directory / f"{DEFAULT_NAME}-{digest[:12]}.pt"
    tmp.replace(path)
    path.with_suffix(".manifest.json").write_text(json.dumps(manifest, indent=1))
    return encoder_register(
        name=DEFAULT_NAME,
        checkpoint_path=path,
        training_manifest=manifest,
        quality=result.quality,
        activate=activate,
    )


def _parent(
    checkpoint: Path, recordings: list[Recording], model_config: DefaultClapConfig
) -> tuple[tuple[Any, Any], dict[str, Any]]:
    """The parent encoder's towers and the lineage its child's manifest records; refuses a
    parent of another config, or one that learned from audio no longer consented to training
    (or cannot say what it learned from)."""
    checkpoint = Path(checkpoint)
    manifest = parent_manifest(checkpoint, recordings)
    try:
        encoder = load_encoder(DEFAULT_NAME, checkpoint)
    except (EncoderError, OSError, ValueError) as exc:
        raise InvalidInput(f"{checkpoint} cannot be fine-tuned from: {exc}") from exc
    if encoder.config != model_config:
        raise InvalidInput(f"{checkpoint.name} has another model config than this training run")
    lineage = {
        "checkpoint": checkpoint.name,
        "checkpoint_sha256": file_sha256(checkpoint),
        "fingerprint": manifest.get("fingerprint"),
        "steps": manifest.get("run", {}).get("steps_done"),
        "seconds": manifest.get("run", {}).get("seconds"),
        "parent": manifest.get("parent"),
    }
    return (encoder.audio_tower.cpu(), encoder.text_projection.cpu()), lineage


AUDIO_ONLY = (
    "{name} is audio-only (no text tower), so retrieval cannot use it; register it without "
    "activating and name it in AUDIT_ENCODER for the similarity audit"
)


def encoder_register(
    *,
    name: str,
    checkpoint_path: Path,
    training_manifest: dict[str, Any] | None = None,
    quality: dict[str, Any] | None = None,
    activate: bool = False,
) -> EncoderVersion:
    """Register a checkpoint as an encoder version (idempotent by name and checkpoint hash).

    The checkpoint is loaded once here, so a bad file is refused before anything is stored.
    """
    checkpoint_path = Path(checkpoint_path).resolve()
    try:
        encoder = load_encoder(name, checkpoint_path)
    except EncoderError as exc:
        raise InvalidInput(str(exc)) from exc
    if activate and is_audio_only(encoder):
        raise InvalidInput(AUDIO_ONLY.format(name=name))
    digest = file_sha256(checkpoint_path)
    with transaction.atomic():
        version, _ = EncoderVersion.objects.get_or_create(
            name=name,
            version=encoder.version,
            defaults={
                "config": {
                    "sample_rate": encoder.sample_rate,
                    "window_seconds": encoder.window_seconds,
                    "audio_only": is_audio_only(encoder),
                },
                "checkpoint_path": str(checkpoint_path),
                "checkpoint_sha256": digest,
                "training_manifest": training_manifest or {},
                "quality": quality or {},
            },
        )
        if activate:
            encoder_activate(encoder_version=version)
    return version


def encoder_activate(*, encoder_version: EncoderVersion) -> EncoderVersion:
    """Make retrieval (and the audit, unless AUDIT_ENCODER names another) use this version."""
    if encoder_version.config.get("audio_only"):
        raise InvalidInput(AUDIO_ONLY.format(name=encoder_version.name))
    with transaction.atomic():
        EncoderVersion.objects.filter(is_active=True).exclude(pk=encoder_version.pk).update(
            is_active=False
        )
        EncoderVersion.objects.filter(pk=encoder_version.pk).update(is_active=True)
    encoder_version.refresh_from_db()
    return encoder_version


def encoder_install_committed(
    *, checkpoint: Path, model_config: DefaultClapConfig, training_config: TrainingConfig
) -> EncoderVersion | None:
    """Use a committed checkpoint if it was trained on exactly today's consented audio.

    Returns None when the catalogue or its training consent has changed since (retrain).
    The checkpoint is copied into the state directory so the repository copy stays pristine.
    """
    manifest_path = checkpoint.with_suffix(".manifest.json")
    if not checkpoint.is_file() or not manifest_path.is_file():
        return None
    committed = json.loads(manifest_path.read_text())
    recordings = encoder_training_recordings()
    if not fits_consented_audio(committed, recordings, model_config, training_config):
        return None
    target = Path(settings.ENCODER_CHECKPOINT_DIR) / checkpoint.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or file_sha256(target) != file_sha256(checkpoint):
        shutil.copyfile(checkpoint, target)
    if committed.get("parent"):
        stage = TrainingConfig.from_dict(committed["training_config"])
        manifest = training_manifest(recordings, model_config, stage, committed["parent"])
    else:
        manifest = training_manifest(recordings, model_config, training_config)
    manifest["run"] = committed.get("run", {})
    manifest["committed_checkpoint"] = str(checkpoint.name)
    return encoder_register(
        name=DEFAULT_NAME,
        checkpoint_path=target,
        training_manifest=manifest,
        quality=committed.get("quality", {}),
        activate=True,
    )
