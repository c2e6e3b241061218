"""The studio's HTML pages through Django's test client: sign-in required, a clear notice
when no model can serve, and receipts only for their owner (the browser tests drive the rest)."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client
from rest_framework.test import APIClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("one_torch_thread")]


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_pages_need_sign_in():
    for url in ("/studio/", "/studio/generations/", f"/studio/generations/{uuid.uuid4()}/"):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_without_a_servable_model_the_studio_says_why_and_cannot_submit(make_user):
    html = signed_in(make_user()).get("/studio/").content.decode()
    assert "Generation is unavailable: no active generator" in html
    assert 'id="generate-button" disabled' in html


def test_a_receipt_is_shown_to_its_owner_only(studio, make_user):
    maker, other = make_user("maker"), make_user("other")
    api = APIClient()
    api.force_authenticate(maker)
    first, second = studio["recordings"][4], studio["recordings"][5]
    response = api.post(
        "/api/generations/",
        {
            "references": [
                {"recording": first.pk, "level": "song", "weight": 1.0},
                {"recording": second.pk, "level": "parameter", "role": "mood", "weight": 0.5},
            ],
            "distribution": "commercial",
            "seconds": 2.0,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    uid = response.json()["id"]

    page = signed_in(maker).get(f"/studio/generations/{uid}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert first.title in html and second.title in html
    assert "Catalogue Holder (100%)" in html and "mood" in html
    listing = signed_in(maker).get("/studio/generations/").content.decode()
    assert f"/studio/generations/{uid}/" in listing

    refused = signed_in(other).get(f"/studio/generations/{uid}/")  # as if it did not exist
    assert refused.status_code == 404 and "does not exist" in refused.content.decode()
    assert (
        f"/studio/generations/{uid}/"
        not in signed_in(other).get("/studio/generations/").content.decode()
    )
    missing = signed_in(maker).get(f"/studio/generations/{uuid.uuid4()}/")
    assert missing.status_code == 404 and "does not exist" in missing.content.decode()


def test_the_studio_offers_the_model_limits_and_catalogue_vocabulary(studio, make_user):
    html = signed_in(make_user()).get("/studio/").content.decode()
    model = studio["model_version"]
    assert f"Model {model}" in html and "at most 4 references" in html
    assert 'data-max-references="4"' in html
    for genre in {r.genre for r in studio["recordings"]}:
        assert f"<option>{genre}</option>" in html
