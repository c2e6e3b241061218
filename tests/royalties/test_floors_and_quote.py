"""Holder-set price floors and the quote a music maker sees before generating: the fee is the
tier in force or the references' highest floor, whichever is higher, and the quote equals what
the completed generation is charged."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from catalog.models import EncoderVersion
from catalog.services.consent import consent_grant
from catalog.services.rights import rights_holder_add_member, rights_holder_create
from catalog.services.works import WorkShareSpec, recording_works_set, work_create
from config.exceptions import Forbidden, InvalidInput
from generation.models import ModelVersion
from royalties.models import LedgerEntry, PriceFloor
from royalties.selectors import ledger_conservation_check
from royalties.services import ChargedReference, generation_fee_post, price_floor_set

pytestmark = pytest.mark.django_db
EVERYTHING = {"uses": ["training", "song_inference", "parameter_inference", "audio_inference"],
              "distributions": ["private", "non_commercial", "commercial"]}  # fmt: skip


def charge(rights, ref="gen-1", level="song", distribution="commercial", at=None):
    return generation_fee_post(
        generation_ref=ref, verified_at=at or timezone.now(), distribution=distribution,
        references=[ChargedReference(rights["recording"].pk, level, 2.0),
                    ChargedReference(rights["solo"].pk, "song", 1.0)],
        training_recording_ids=[rights["recording"].pk],
    )  # fmt: skip


def fee_of(tx) -> int:
    return tx.entries.get(account__kind="receivable").amount_minor


def test_a_holder_floor_above_the_tier_sets_the_fee_and_the_memo_says_so(pricing, rights):
    # song/commercial tier: 1000 cents; holder B (30% of the shared recording) asks for 2500
    price_floor_set(
        actor=rights["member_b"], holder=rights["holder_b"], recording=rights["recording"],
        level="song", distribution="commercial", amount_minor=2_500,
    )  # fmt: skip
    tx = charge(rights)
    assert fee_of(tx) == 2_500 and "floor 2500" in tx.memo and "tier 1000" in tx.memo
    # the direct 60% (1500) goes 2:1 to the references: B still gets 30% of the shared 1000
    owed_b = -sum(
        LedgerEntry.objects.filter(holder=rights["holder_b"], component="ita").values_list(
            "amount_minor", flat=True
        )
    )
    assert owed_b == 300
    assert ledger_conservation_check().ok
    # a floor below the tier changes nothing; another level or distribution is not affected
    assert fee_of(charge(rights, ref="gen-nc", distribution="non_commercial")) == 300


def test_a_recording_floor_overrides_the_holders_default_and_0_lifts_it(pricing, rights):
    a, member = rights["holder_a"], rights["member_a"]
    price_floor_set(
        actor=member, holder=a, level="song", distribution="commercial", amount_minor=4_000
    )
    assert fee_of(charge(rights, ref="default")) == 4_000  # A's default covers both references
    price_floor_set(
        actor=member, holder=a, recording=rights["recording"], level="song",
        distribution="commercial", amount_minor=1_200,
    )  # fmt: skip
    # the shared recording now asks 1200, but the solo recording still has A's default 4000
    assert fee_of(charge(rights, ref="override")) == 4_000
    price_floor_set(actor=member, holder=a, level="song", distribution="commercial", amount_minor=0)
    assert fee_of(charge(rights, ref="lifted")) == 1_200
    assert PriceFloor.objects.count() == 3  # append-only: the history stays


def test_the_floor_in_force_at_verification_applies(pricing, rights):
    before = timezone.now() - timedelta(minutes=5)
    price_floor_set(
        actor=rights["member_a"], holder=rights["holder_a"], level="song",
        distribution="commercial", amount_minor=9_000,
    )  # fmt: skip
    assert fee_of(charge(rights, ref="verified-before", at=before)) == 1_000


def test_bad_floors_are_refused_and_store_nothing(pricing, rights, make_user, make_recording):
    holder, member = rights["holder_a"], rights["member_a"]
    bad = [
        ({"amount_minor": -1}, InvalidInput, "non-negative"),
        ({"amount_minor": 1.5}, InvalidInput, "whole"),
        ({"currency": "XXX"}, InvalidInput, "unknown currency"),
        ({"level": "symphonic"}, InvalidInput, "unknown level"),
        ({"recording": make_recording("Not A's")}, InvalidInput, "holds no share"),
        ({"actor": make_user()}, Forbidden, "only members"),
    ]
    for change, error, message in bad:
        kwargs = {"actor": member, "holder": holder, "level": "song",
                  "distribution": "commercial", "amount_minor": 500, **change}  # fmt: skip
        with pytest.raises(error, match=message):
            price_floor_set(**kwargs)
    assert not PriceFloor.objects.exists()


def test_a_publishers_floor_counts_for_the_recordings_that_embody_its_work(
    pricing, rights, staff, make_user
):
    publisher = rights_holder_create(name="Demo Publishing", kind="organisation", ipi="00052210040")
    publisher_member = make_user("publisher-member")
    rights_holder_add_member(holder=publisher, user=publisher_member)
    work = work_create(
        actor=staff, title="Theme", shares=[WorkShareSpec(publisher, "publisher", 10_000)]
    )
    recording_works_set(actor=staff, recording=rights["solo"], works={work: 10_000})
    price_floor_set(
        actor=publisher_member, holder=publisher, recording=rights["solo"], level="song",
        distribution="commercial", amount_minor=1_800,
    )  # fmt: skip
    assert fee_of(charge(rights)) == 1_800


# --- the quote -----------------------------------------------------------------------------


@pytest.fixture
def quotable(pricing, rights, staff):
    """Both recordings fully consented; an active model trained on the shared one."""
    for member, holder in (("member_a", "holder_a"), ("member_b", "holder_b")):
        consent_grant(actor=rights[member], holder=rights[holder], recording=rights["recording"],
                      **EVERYTHING)  # fmt: skip
    consent_grant(actor=rights["member_a"], holder=rights["holder_a"], recording=rights["solo"],
                  **EVERYTHING)  # fmt: skip
    encoder = EncoderVersion.objects.create(
        name="enc", version="1", checkpoint_path="/x.pt", checkpoint_sha256="0"
    )
    ModelVersion.objects.create(
        name="gen", version="1", checkpoint_path="/y.pt", checkpoint_sha256="1" * 64,
        encoder=encoder, training_recording_ids=[rights["recording"].pk], is_active=True,
    )  # fmt: skip
    return rights


def quote(user, references, distribution="commercial"):
    api = APIClient()
    api.force_authenticate(user)
    return api.post(
        "/api/generations/quote/",
        {"references": references, "distribution": distribution},
        format="json",
    )


def test_the_quote_equals_the_charge_and_names_each_holders_share(quotable, make_user):
    rights = quotable
    price_floor_set(
        actor=rights["member_b"], holder=rights["holder_b"], recording=rights["recording"],
        level="song", distribution="commercial", amount_minor=2_500,
    )  # fmt: skip
    maker = make_user("maker")
    references = [{"recording": rights["recording"].pk, "level": "song", "weight": 2.0},
                  {"recording": rights["solo"].pk, "level": "song", "weight": 1.0}]  # fmt: skip
    response = quote(maker, references)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["amount_minor"] == 2_500 and body["amount"] == "25.00"
    assert body["tier_minor"] == 1_000
    assert body["floor"] == {"recording": rights["recording"].pk,
                             "holder": rights["holder_b"].pk, "amount_minor": 2_500}  # fmt: skip
    assert sum(body["parts"].values()) == 2_500
    shares = {(h["name"], h["recording"]): h["amount_minor"] for h in body["holders"]}
    assert shares == {("Holder A", rights["recording"].pk): 700,
                      ("Holder B", rights["recording"].pk): 300,
                      ("Holder A", rights["solo"].pk): 500}  # fmt: skip

    tx = charge(rights, ref="after-quote")
    assert fee_of(tx) == body["amount_minor"]
    for holder_key in ("holder_a", "holder_b"):
        charged = -sum(
            tx.entries.filter(holder=rights[holder_key], component="ita").values_list(
                "amount_minor", flat=True
            )
        )
        quoted = sum(
            h["amount_minor"] for h in body["holders"] if h["holder"] == rights[holder_key].pk
        )
        assert charged == quoted


def test_a_quote_for_a_forbidden_or_unknown_reference_is_refused(quotable, make_user):
    rights = quotable
    maker = make_user("maker")
    from catalog.services.consent import consent_revoke

    # the solo recording is A's alone: A withdraws commercial distribution
    consent_revoke(actor=rights["member_a"], holder=rights["holder_a"], recording=rights["solo"],
                   distributions=["commercial"])  # fmt: skip
    refused = quote(maker, [{"recording": rights["solo"].pk}])
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "references_refused"
    assert "does not permit commercial distribution" in str(refused.json()["error"]["details"])
    assert quote(maker, [{"recording": 999_999}]).status_code == 404
    assert (
        quote(maker, [{"recording": rights["solo"].pk}], distribution="galactic").status_code == 400
    )
    assert not LedgerEntry.objects.exists()


def test_holders_set_and_read_floors_through_the_api(quotable, make_user):
    rights = quotable
    api = APIClient()
    api.force_authenticate(rights["member_b"])
    url = f"/api/royalties/holders/{rights['holder_b'].pk}/floors/"
    floor = {"recording": rights["recording"].pk, "level": "song",
             "distribution": "commercial", "amount_minor": 1_500}  # fmt: skip
    created = api.post(url, floor, format="json")
    assert created.status_code == 201, created.json()
    assert [f["amount_minor"] for f in api.get(url).json()] == [1_500]
    for bad in ({"amount_minor": -5}, {"level": "x"}, {"recording": rights["solo"].pk}):
        body = {"level": "song", "distribution": "commercial", "amount_minor": 100, **bad}
        assert api.post(url, body, format="json").status_code == 400
    outsider = APIClient()
    outsider.force_authenticate(make_user())
    assert outsider.get(url).status_code == 404
    assert outsider.post(url, {"level": "song", "distribution": "commercial",
                               "amount_minor": 1}, format="json").status_code == 404  # fmt: skip
    assert PriceFloor.objects.count() == 1


# --- the portal's prices page ---------------------------------------------------------------


def test_a_member_sets_and_lifts_a_minimum_price_on_the_portal(pricing, rights, client, make_user):
    client.force_login(rights["member_a"])
    url = f"/portal/holders/{rights['holder_a'].pk}/prices/"
    page = client.get(url).content.decode()
    assert "No minimum prices" in page and f'value="{rights["solo"].pk}"' in page
    form = {"recording": rights["solo"].pk, "level": "song", "distribution": "commercial",
            "amount": "12.50"}  # fmt: skip
    assert client.post(url, form).status_code == 302
    page = client.get(url).content.decode()
    assert 'id="price-floors"' in page and "12.50" in page
    assert fee_of(charge(rights, ref="after-portal")) == 1_250
    assert client.post(url, {**form, "amount": "0"}).status_code == 302
    assert "No minimum prices" in client.get(url).content.decode()
    for bad in ({"amount": "-1"}, {"amount": "1.234"}, {"amount": "ten"}, {"level": "x"},
                {"recording": "abc"}):  # fmt: skip
        response = client.post(url, {**form, **bad})
        assert response.status_code == 400, bad
    assert PriceFloor.objects.count() == 2
    client.force_login(make_user())
    assert client.get(url).status_code == 404
