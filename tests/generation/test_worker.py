"""A real Celery worker on the `generation` queue runs a generation submitted through
the API; the music maker follows progress and downloads the signed output."""

from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from tests.attribution.conftest import emptied_log_after  # noqa: F401

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]


def test_worker_generates_a_submitted_request(
    studio,
    make_user,
    generation_worker,
    emptied_log_after,  # noqa: F811
):
    client = APIClient()
    client.force_authenticate(make_user("maker"))
    first, second = studio["recordings"][4], studio["recordings"][5]
    response = client.post(
        "/api/generations/",
        {
            "references": [
                {"recording": first.pk, "level": "song", "weight": 1.0},
                {"recording": second.pk, "level": "song", "role": "mood", "weight": 0.5},
            ],
            "distribution": "non_commercial",
            "seconds": 2.0,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    url = f"/api/generations/{response.json()['id']}/"
    seen = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        detail = client.get(url).json()
        seen.add(detail["status"])
        if detail["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.2)
    assert detail["status"] == "succeeded", detail["failure_reason"]
    assert detail["progress"]["step"] == detail["progress"]["total"] > 0
    audio = client.get(detail["audio_url"])
    assert audio.status_code == 200 and b"".join(audio.streaming_content)[:4] == b"RIFF"
    shown = client.get(detail["provenance_url"]).json()
    names = [i["title"] for i in shown["c2pa"]["manifest"]["ingredients"]]
    assert names == [first.title, second.title]
