"""Dispute pages: the portal's (a holder's disputes, its recent generations, the form), the
studio's (a generation's, for its maker), one dispute with its record and forms, and staff's.
A refused form shows the service's message with its 4xx status and writes nothing."""

from __future__ import annotations

import pytest
from django.test import Client

from disputes.models import Dispute, DisputeEvent
from royalties.models import LedgerTransaction
from tests.disputes.test_disputes import assert_balanced, owed

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_holder_opens_a_tda_dispute_from_the_portal(world):
    a, ref, t1 = world["holder_a"], world["generation"], world["t1"]
    client = signed_in(world["member_a"])
    page = client.get(f"/portal/holders/{a.pk}/disputes/")
    assert page.status_code == 200
    assert ref in page.content.decode()  # the generation that paid it, with a Dispute link
    prefilled = client.get(f"/portal/holders/{a.pk}/disputes/?generation={ref}")
    assert f'value="{ref}"' in prefilled.content.decode()

    response = client.post(
        f"/portal/holders/{a.pk}/disputes/",
        {"subject": "tda_shares", "generation": ref, "recording": t1.pk,
         "reason": "t1 carries the groove"},
    )  # fmt: skip
    dispute = Dispute.objects.get()
    assert response.status_code == 302 and response.url == f"/disputes/{dispute.pk}/"
    assert dispute.holder == a and dispute.recording == t1
    assert owed(a, ref, "tda") == 0
    detail = client.get(response.url).content.decode()
    assert "t1 carries the groove" in detail and "Held now" in detail
    assert "Resolve" not in detail  # not staff
    # B, concerned, finds it in its portal; C does not, and cannot open it
    assert (
        f"/disputes/{dispute.pk}/"
        in signed_in(world["member_b"])
        .get(f"/portal/holders/{world['holder_b'].pk}/disputes/")
        .content.decode()
    )
    outsider = signed_in(world["member_c"])
    assert outsider.get(f"/disputes/{dispute.pk}/").status_code == 404
    assert outsider.get(f"/portal/holders/{a.pk}/disputes/").status_code == 404


def test_a_refused_portal_form_shows_why_and_writes_nothing(world):
    a, ref = world["holder_a"], world["generation"]
    client = signed_in(world["member_a"])
    before = (Dispute.objects.count(), LedgerTransaction.objects.count())
    response = client.post(
        f"/portal/holders/{a.pk}/disputes/",
        {"subject": "tda_shares", "generation": ref, "recording": world["r1"].pk,
         "reason": "r1 trained it"},
    )  # fmt: skip
    assert response.status_code == 403
    assert "not in the training attribution" in response.content.decode()
    assert "r1 trained it" in response.content.decode()  # the form keeps what was typed
    assert (Dispute.objects.count(), LedgerTransaction.objects.count()) == before
    bad_id = client.post(
        f"/portal/holders/{a.pk}/disputes/",
        {"subject": "ownership", "recording": "abc", "reason": "x"},
    )
    assert bad_id.status_code == 400 and "recording must be an id" in bad_id.content.decode()
    assert (Dispute.objects.count(), LedgerTransaction.objects.count()) == before


def test_the_maker_opens_one_from_the_studio_and_staff_resolve_it_on_its_page(world):
    ref, staff = world["generation"], world["staff"]
    maker = signed_in(world["maker"])
    assert maker.get(f"/studio/generations/{ref}/disputes/").status_code == 200
    assert (
        signed_in(world["member_a"]).get(f"/studio/generations/{ref}/disputes/").status_code == 404
    )
    response = maker.post(
        f"/studio/generations/{ref}/disputes/",
        {"subject": "direct_attribution", "reason": "the weights were swapped"},
    )
    dispute = Dispute.objects.get()
    assert response.status_code == 302 and dispute.holder is None

    admin = signed_in(staff)
    listing = admin.get("/attribution/disputes/").content.decode()
    assert f"/disputes/{dispute.pk}/" in listing
    assert signed_in(world["member_a"]).get("/attribution/disputes/").status_code == 302
    page = admin.get(f"/disputes/{dispute.pk}/").content.decode()
    assert f'name="weight-{world["r1"].pk}"' in page and f'name="weight-{world["r2"].pk}"' in page

    # a bad correction is refused on the page, nothing changes
    bad = admin.post(
        f"/disputes/{dispute.pk}/",
        {"action": "resolve", "outcome": "upheld", "note": "x", f"weight-{world['r1'].pk}": "-1"},
    )
    assert bad.status_code == 400 and Dispute.objects.get().status == "open"
    done = admin.post(
        f"/disputes/{dispute.pk}/",
        {"action": "resolve", "outcome": "upheld", "note": "swap them back",
         f"weight-{world['r1'].pk}": "1", f"weight-{world['r2'].pk}": "2"},
    )  # fmt: skip
    assert done.status_code == 302
    assert Dispute.objects.get().status == "upheld"
    assert owed(world["holder_a"], ref, "ita") == 200 and owed(world["holder_b"], ref, "ita") == 400
    assert_balanced()
    assert list(DisputeEvent.objects.filter(dispute=dispute).values_list("kind", flat=True)) == [
        "opened",
        "held",
        "upheld",
    ]


def test_parties_add_notes_on_the_dispute_page(world):
    a, ref = world["holder_a"], world["generation"]
    signed_in(world["member_a"]).post(
        f"/portal/holders/{a.pk}/disputes/",
        {"subject": "tda_shares", "generation": ref, "recording": world["t1"].pk, "reason": "r"},
    )
    dispute = Dispute.objects.get()
    noted = signed_in(world["maker"]).post(
        f"/disputes/{dispute.pk}/", {"action": "note", "note": "I agree with the holder"}
    )
    assert noted.status_code == 302
    page = signed_in(world["member_b"]).get(f"/disputes/{dispute.pk}/").content.decode()
    assert "I agree with the holder" in page
