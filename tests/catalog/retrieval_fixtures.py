"""A tiny trained encoder and a small embedded catalogue of real recordings, for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from catalog.audio.decoding import file_sha256, load_mono
from catalog.encoders.default_clap import DefaultClapConfig, FrozenSentenceEncoder, save_checkpoint
from catalog.encoders.training import TrainingConfig, TrainingItem, train_default_clap
from catalog.models import Artist, Recording
from catalog.services.consent import consent_grant
from catalog.services.embedding import catalogue_embed
from catalog.services.encoders import encoder_register
from catalog.services.rights import rights_shares_set
from tests.conftest import require_real_audio

PUSHOVER = Path("/usr/share/pushover/themes")
THEMES = ("electro", "castle", "dungeon", "greek", "japanese", "space")
GENRES = ("Electronic", "Classical", "Soundtrack", "Classical", "Folk", "Electronic")

TINY_MODEL = DefaultClapConfig(channels=(8, 16, 32), n_mels=32)
TINY_TRAINING = TrainingConfig(steps=12, batch_size=6, captions_per_recording=4, pseudo_tags=True)


def theme_paths() -> list[Path]:
    paths = [PUSHOVER / f"{theme}.ogg" for theme in THEMES]
    require_real_audio(*paths)
    return paths


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A default-clap checkpoint trained for a few steps on real recordings (about 20 s)."""
    items = [
        TrainingItem(path.stem, load_mono(path, sample_rate=TINY_MODEL.sample_rate)[: 16000 * 60],
                     {"genre": genre, "moods": ["calm"], "tempo_bpm": 100.0, "mode": "major"})
        for path, genre in zip(theme_paths(), GENRES, strict=True)
    ]  # fmt: skip
    result = train_default_clap(items, model_config=TINY_MODEL, training_config=TINY_TRAINING)
    path = tmp_path_factory.mktemp("encoder") / "tiny.pt"
    save_checkpoint(
        path,
        config=TINY_MODEL,
        audio_tower=result.audio_tower,
        text_projection=result.text_projection,
        text_model_sha256=FrozenSentenceEncoder().weights_sha256(),
        extra={"quality": result.quality},
    )
    return path


def theme_clip(name: str, offset: float, *, sample_rate: int, seconds: float = 3.0) -> np.ndarray:
    """`seconds` of a pushover theme from `offset`, mono at `sample_rate` (an audit clip)."""
    path = PUSHOVER / f"{name}.ogg"
    require_real_audio(path)
    audio = load_mono(path, sample_rate=sample_rate)
    start = int(offset * sample_rate)
    return audio[start : start + int(seconds * sample_rate)]


def write_excerpt(source: Path, target: Path, *, seconds: float, offset: float = 5.0) -> Path:
    info = sf.info(str(source))
    data, rate = sf.read(
        str(source), start=int(offset * info.samplerate), frames=int(seconds * info.samplerate)
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(target), data.astype(np.float32), rate)
    return target


@pytest.fixture
def embedded_catalogue(settings, tiny_checkpoint, make_holder, make_user, staff):
    """Six real 12-s recordings, each fully opted in by its one holder, embedded."""
    member = make_user("catalogue-holder")
    holder = make_holder("Catalogue Holder", member=member)
    recordings = []
    for path, genre in zip(theme_paths(), GENRES, strict=True):
        relative = f"recordings/test/{path.stem}.wav"
        excerpt = write_excerpt(path, Path(settings.MEDIA_ROOT) / relative, seconds=12.0)
        recording = Recording.objects.create(
            title=path.stem.title(),
            artist=Artist.objects.get_or_create(name="Pushover")[0],
            duration_seconds=12.0,
            audio_file=relative,
            audio_format="wav",
            sample_rate=44100,
            channels=2,
            content_sha256=file_sha256(excerpt),
            genre=genre,
        )
        rights_shares_set(actor=staff, recording=recording, shares={holder: 10_000})
        consent_grant(
            actor=member,
            holder=holder,
            recording=recording,
            uses=["song_inference", "parameter_inference", "audio_inference"],
            distributions=["private", "non_commercial", "commercial"],
        )
        recordings.append(recording)
    version = encoder_register(name="default-clap", checkpoint_path=tiny_checkpoint, activate=True)
    counts = catalogue_embed(encoder_version=version)
    assert counts["embedded"] == len(recordings)
    return {"recordings": recordings, "holder": holder, "member": member, "encoder": version}
