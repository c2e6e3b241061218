"""The API's contract with its clients (issue 17): bad input is a 400 in the one error shape and
never reaches the database; the published schema names every operation's own shapes and its
errors; an unexpected failure is a JSON 500 that names its request id, never a debug page."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from rest_framework.test import APIClient

from catalog.services.rights import rights_shares_set
from generation.models import GenerationRequest

pytestmark = pytest.mark.django_db

BEYOND_BIGINT = "6365382558115819698520064"  # the offset a fuzzer sent, past 64 bits
PERIOD = "2026-12"


@pytest.fixture
def holder_world(make_user, make_holder, make_recording, staff):
    member = make_user("member")
    holder = make_holder("Label", member=member)
    recording = make_recording("Song")
    rights_shares_set(actor=staff, recording=recording, shares={holder: 10_000})
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(member)
    return {"client": client, "holder": holder, "recording": recording}


def bad_queries(holder: int, recording: int) -> list[tuple[str, str]]:
    payouts = f"/api/royalties/holders/{holder}/payouts"
    return [
        ("/api/attribution/records/?generation=a%00b", "generation"),
        (f"/api/catalogue/browse/decade/?offset={BEYOND_BIGINT}", "offset"),
        ("/api/catalogue/browse/decade/?offset=-1", "offset"),
        ("/api/catalogue/browse/genre/?path=a%00", "path"),
        ("/api/catalogue/search/?q=%00", "q"),
        ("/api/catalogue/recordings/?page=0", "page"),
        ("/api/catalogue/recordings/?page=first", "page"),
        (f"/api/catalogue/recordings/?page={BEYOND_BIGINT}", "page"),
        (f"/api/generations/?page={BEYOND_BIGINT}", "page"),
        (f"{payouts}/?period=2026-12%00", "period"),
        (f"{payouts}/?period={PERIOD}&currency=E%00R", "currency"),
        (f"{payouts}/recordings/?period={PERIOD}&recording={BEYOND_BIGINT}", "recording"),
        (f"{payouts}/generations/?period={PERIOD}&level=a%00", "level"),
        (f"{payouts}/generations/?period={PERIOD}&page=-3", "page"),
        (f"/api/retrieval/recordings/{recording}/alternatives/?k=0", "k"),
    ]


@pytest.mark.parametrize("case", range(15))
def test_a_bad_query_parameter_is_a_400_naming_it(holder_world, case):
    url, field = bad_queries(holder_world["holder"].pk, holder_world["recording"].pk)[case]
    response = holder_world["client"].get(url)
    assert response.status_code == 400, (url, response.content[:300])
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and field in error["details"], error


def test_a_page_past_the_last_is_404_not_a_server_error(holder_world):
    response = holder_world["client"].get("/api/catalogue/recordings/?page=99")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "headers", "field"),
    [
        ({"references": [{"recording": int(BEYOND_BIGINT)}]}, {}, "references"),
        ({"prompt": "calm\x07strings"}, {}, "prompt"),
        ({"key": "a\x00b"}, {}, "key"),
        ({}, {"HTTP_IDEMPOTENCY_KEY": "k\x1b[31m"}, "key"),
        ({"seed": -1}, {}, "seed"),
    ],
)
def test_a_bad_generation_request_is_a_400_and_nothing_is_queued(
    holder_world, body, headers, field
):
    request = {
        "references": [{"recording": holder_world["recording"].pk, "level": "song"}],
        "distribution": "private",
        "seconds": 2.0,
        **body,
    }
    response = holder_world["client"].post("/api/generations/", request, format="json", **headers)
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and field in error["details"], error
    assert not GenerationRequest.objects.exists()


def published_schema(tmp_path: Path) -> dict:
    target = tmp_path / "schema.yaml"
    # --fail-on-warn: a name collision (two `Output` serializers) is a warning there
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    return yaml.safe_load(target.read_text())


def test_the_schema_names_each_operations_own_shapes_and_documents_its_errors(tmp_path):
    schema = published_schema(tmp_path)
    components = schema["components"]["schemas"]
    assert not {"Output", "Input", "PaginatedOutputList"} & set(components)

    def response_ref(path: str, method: str = "get", status: str = "200") -> str:
        content = schema["paths"][path][method]["responses"][status]["content"]
        return next(iter(content.values()))["schema"]["$ref"].rsplit("/", 1)[-1]

    assert response_ref("/api/catalogue/recordings/{recording_id}/") == "RecordingDetailOutput"
    assert response_ref("/api/generations/models/") == "PaginatedModelVersionListOutputList"
    assert response_ref("/api/royalties/price-lists/") == "PaginatedPriceListOutputList"
    revoke = "/api/catalogue/holders/{holder_id}/consents/{recording_id}/revoke/"
    assert response_ref(revoke, "post") == "HolderConsentDetailOutput"

    assert components["Error"]["required"] == ["error"]
    for path, operations in schema["paths"].items():
        for method in operations:
            expected = {"400", "403", "404", "500"} | ({"409"} if method != "get" else set())
            for status in expected:
                assert response_ref(path, method, status) == "Error", (path, method, status)


def test_an_unexpected_failure_is_a_json_500_with_its_request_id(holder_world, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("catalog.selectors.recording_get", broken)
    recording = holder_world["recording"]
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = holder_world["client"].get(f"/api/catalogue/recordings/{recording.pk}/")

    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    request_id = response["X-Request-ID"]
    assert response.json() == {
        "error": {
            "code": "server_error",
            "message": "The server failed to answer this request; quote the request id when "
            "reporting it.",
            "details": {"request_id": request_id},
        }
    }
    assert b"secret internals" not in response.content and b"Traceback" not in response.content
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert logged and logged[0].request_id == request_id and logged[0].exc_info


def test_a_page_that_fails_shows_the_request_id_not_a_traceback(client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("config.views.render", broken)
    client.raise_request_exception = False
    response = client.get("/", HTTP_X_REQUEST_ID="proxy-request-0001")
    assert response.status_code == 500 and response["X-Request-ID"] == "proxy-request-0001"
    assert b"proxy-request-0001" in response.content and b"secret internals" not in response.content


def test_a_proxys_request_id_is_kept_only_when_it_looks_like_one(client):
    assert client.get("/", HTTP_X_REQUEST_ID="edge-7f3a9c21")["X-Request-ID"] == "edge-7f3a9c21"
    replaced = client.get("/", HTTP_X_REQUEST_ID="no spaces\nor newlines")["X-Request-ID"]
    assert len(replaced) == 32 and replaced.isalnum()
