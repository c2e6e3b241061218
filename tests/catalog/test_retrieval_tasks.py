"""A real Celery worker (Redis broker) embeds a recording with the active encoder."""

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from catalog.models import RecordingEmbedding, RecordingWindowEmbedding
from catalog.services.embedding import catalogue_embed
from catalog.tasks import recording_embed
from config.celery import app

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]


def test_worker_embeds_a_recording_idempotently(embedded_catalogue):
    redis.Redis.from_url(settings.CELERY_BROKER_URL).ping()
    recording = embedded_catalogue["recordings"][0]
    version = embedded_catalogue["encoder"]
    RecordingWindowEmbedding.objects.filter(recording=recording).delete()
    RecordingEmbedding.objects.filter(recording=recording).delete()

    app.conf.task_default_queue = "embedding"
    with start_worker(
        app, pool="solo", concurrency=1, perform_ping_check=False, queues=["embedding"]
    ):
        result = recording_embed.delay(recording.pk).get(timeout=120)
        again = recording_embed.delay(recording.pk).get(timeout=60)
    assert result == {"recording": recording.pk, "encoder": str(version), "windows": 2}
    assert again == result
    assert RecordingWindowEmbedding.objects.filter(recording=recording).count() == 2
    assert catalogue_embed(encoder_version=version)["embedded"] == 0
