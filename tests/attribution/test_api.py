"""The read API: people read the records of their own requests, staff read all and verify the
chain; the admin shows the log read-only."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.contrib import admin
from rest_framework.test import APIClient

from attribution_log.chain import record_digest
from attribution_log.models import AttributionRecord
from tests.attribution.conftest import append

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def logged(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    return {
        "alice": alice,
        "bob": bob,
        "alice_records": append(3, requested_by=alice.pk, prefix="alice"),
        "bob_records": append(2, requested_by=bob.pk, prefix="bob"),
    }


def refs(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [r["generation_ref"] for r in response.json()["results"]]


def test_people_read_only_the_records_of_their_own_requests(logged):
    api = client_for(logged["alice"])
    assert refs(api.get("/api/attribution/records/")) == ["alice-0", "alice-1", "alice-2"]
    assert refs(api.get("/api/attribution/records/", {"generation": "alice-1"})) == ["alice-1"]
    assert refs(api.get("/api/attribution/records/", {"generation": "bob-0"})) == []

    other = logged["bob_records"][0].sequence
    response = api.get(f"/api/attribution/records/{other}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert api.get("/api/attribution/records/999999999/").status_code == 404


def test_a_record_from_the_api_can_be_checked_by_hand(logged):
    record = logged["alice_records"][1]
    body = client_for(logged["alice"]).get(f"/api/attribution/records/{record.sequence}/").json()
    assert body["payload"]["requested_by"] == logged["alice"].pk
    assert body["previous_hash"] == logged["alice_records"][0].record_hash
    created_at = datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))
    assert created_at == record.created_at
    assert body["record_hash"] == record_digest(
        sequence=body["sequence"],
        kind=body["kind"],
        generation_ref=body["generation_ref"],
        created_at=created_at,
        previous_hash=body["previous_hash"],
        payload_sha256=body["payload_sha256"],
    )


def test_staff_read_every_record(logged, staff):
    api = client_for(staff)
    assert len(refs(api.get("/api/attribution/records/"))) == 5
    assert refs(api.get("/api/attribution/records/", {"generation": "bob-1"})) == ["bob-1"]
    bob = logged["bob_records"][0]
    assert api.get(f"/api/attribution/records/{bob.sequence}/").json()["kind"] == bob.kind


def test_only_staff_verify_the_chain(logged, staff):
    response = client_for(logged["alice"]).get("/api/attribution/verify/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert APIClient().get("/api/attribution/verify/").status_code in (401, 403)
    assert APIClient().get("/api/attribution/records/").status_code in (401, 403)

    body = client_for(staff).get("/api/attribution/verify/").json()
    head = logged["bob_records"][-1]
    assert body == {
        "ok": True,
        "checked": 5,
        "first_broken_sequence": None,
        "reason": "",
        "head_sequence": head.sequence,
        "head_hash": head.record_hash,
    }


def test_the_admin_shows_the_log_read_only(client, staff, logged):
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    record = logged["alice_records"][0]
    assert client.get("/admin/attribution_log/attributionrecord/").status_code == 200
    page = client.get(f"/admin/attribution_log/attributionrecord/{record.sequence}/change/")
    assert page.status_code == 200 and record.record_hash in page.content.decode()
    model_admin = admin.site._registry[AttributionRecord]
    request = type("Request", (), {"user": staff})()
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
