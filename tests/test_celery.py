"""A real Celery worker, with Redis as broker, runs a catalogue task against the database."""

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from catalog.import_metadata import load_metadata
from catalog.models import Recording
from catalog.services.importing import catalogue_import_folder
from catalog.tasks import recording_check_integrity
from config.celery import app
from tests.conftest import REAL_OGG, excerpt_of, require_real_audio

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def worker():
    try:
        redis.Redis.from_url(settings.CELERY_BROKER_URL).ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not reachable at {settings.CELERY_BROKER_URL}; start redis-server")
    app.conf.task_default_queue = "embedding"
    with start_worker(
        app, pool="solo", concurrency=1, perform_ping_check=False, queues=["embedding"]
    ):
        yield


def test_worker_checks_stored_audio_against_its_hash(worker, tmp_path):
    require_real_audio(REAL_OGG)
    excerpt_of(REAL_OGG, tmp_path / "clip.wav", seconds=4)
    catalogue_import_folder(folder=tmp_path, metadata=load_metadata(None), analysis_seconds=4)
    recording = Recording.objects.get()

    result = recording_check_integrity.delay(recording.pk).get(timeout=30)
    assert result == {"recording": recording.pk, "intact": True}

    with open(recording.audio_file.path, "r+b") as handle:  # bit rot on disk
        handle.seek(100)
        handle.write(b"\x00\x01\x02")
    result = recording_check_integrity.apply_async(args=[recording.pk]).get(timeout=30)
    assert result["intact"] is False


def test_tasks_are_routed_to_their_queues_by_kind_of_work():
    def queue(task: str) -> str:
        return app.amqp.router.route({}, task)["queue"].name

    assert queue("catalog.tasks.recording_check_integrity") == "embedding"
    assert queue("generation.tasks.generation_run") == "generation"
    assert queue("jobs.tasks.jobs_sweep") == "generation"  # quick, and never held for minutes
    assert queue("attribution.tasks.tda_prepare") == "attribution"
    assert queue("attribution.tasks.tda_score_chunk") == "attribution"
    assert queue("attribution.tasks.similarity_audit_run") == "audit"
