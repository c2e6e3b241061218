"""A tiny generator trained by the product's own service on a small embedded catalogue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redis
import soundfile as sf
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from catalog.services.consent import consent_grant
from config.celery import app
from generation.model import GeneratorConfig, TrainConfig
from generation.services.models import generator_train
from tests.catalog.retrieval_fixtures import (  # noqa: F401
    embedded_catalogue,
    tiny_checkpoint,
    write_excerpt,
)
from tests.royalties.conftest import pricing  # noqa: F401

TRAINED = 4  # the first four recordings are opted in to training as well


def tiny_train_config() -> TrainConfig:
    return TrainConfig.tiny(steps=40)


@pytest.fixture
def studio(settings, tmp_path, embedded_catalogue, pricing):  # noqa: F811
    """Six consented, embedded recordings; a tiny generator trained on four; prices set."""
    settings.GENERATOR_CHECKPOINT_DIR = tmp_path / "generators"
    settings.C2PA_DEVELOPMENT_DIR = tmp_path / "c2pa"
    recordings = embedded_catalogue["recordings"]
    for recording in recordings[:TRAINED]:
        consent_grant(
            actor=embedded_catalogue["member"],
            holder=embedded_catalogue["holder"],
            recording=recording,
            uses=["training"],
        )
    outcome = generator_train(config=GeneratorConfig.tiny(), train=tiny_train_config())
    return {**embedded_catalogue, "model_version": outcome.model_version}


def user_track(path: Path, seconds: float = 1.5) -> Path:
    """A short real excerpt, as a music maker would upload their own track."""
    source = Path("/usr/share/pushover/themes/electro.ogg")
    return write_excerpt(source, path, seconds=seconds, offset=20.0)


def wav_bytes(path: Path) -> np.ndarray:
    audio, _ = sf.read(str(path), dtype="float32")
    return audio


def _worker(queues: list[str]):
    try:
        redis.Redis.from_url(settings.CELERY_BROKER_URL).ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not reachable at {settings.CELERY_BROKER_URL}; start redis-server")
    return start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, queues=queues)


@pytest.fixture
def generation_worker():
    """A real Celery worker on the `generation` queue, in this process (it sees the test
    database)."""
    with _worker(["generation"]):
        yield


@pytest.fixture
def generation_and_attribution_worker():
    """One real worker on the `generation` and `attribution` queues (a chord after a
    generation)."""
    with _worker(["generation", "attribution"]):
        yield
