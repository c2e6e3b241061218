"""Money on both sides of a song: what a recording earns is divided between its master holders
and the writers and publishers of the works it embodies, by the split policy's publishing part;
then by work links (medleys) and shares. Exact to the minor unit; the ledger stays balanced."""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.test import APIClient

from catalog.services.rights import rights_holder_add_member, rights_holder_create
from catalog.services.works import WorkShareSpec, recording_works_set, work_create
from royalties.allocation import (
    MASTER,
    PUBLISHING,
    AllocationError,
    RecordingRights,
    split_recording_rights,
)
from royalties.models import LedgerEntry, Statement
from royalties.selectors import holder_period_totals, ledger_conservation_check
from royalties.services import (
    ChargedReference,
    generation_fee_post,
    generation_payouts_hold,
    generation_payouts_release,
    price_list_publish,
    split_policy_publish,
    statement_close,
    tda_pool_settle,
)
from tests.royalties.conftest import tiers

THIS_MONTH = f"{timezone.now():%Y-%m}"

# --- the allocation (plain module) ------------------------------------------------------------

shares_strategy = st.dictionaries(
    st.integers(1, 50), st.integers(1, 100), min_size=1, max_size=5
).map(lambda w: _to_basis_points(w))


def _to_basis_points(weights: dict[int, int]) -> dict[int, int]:
    """Positive weights -> basis points summing to exactly 10,000 (each at least 1)."""
    keys = sorted(weights)[:10_000]
    total = sum(weights[k] for k in keys)
    bp = {k: max(1, weights[k] * 10_000 // total) for k in keys}
    bp[keys[0]] += 10_000 - sum(bp.values())
    if bp[keys[0]] < 1:
        return {keys[0]: 10_000}
    return bp


@given(
    amount=st.integers(0, 10**12),
    master=st.one_of(st.just({}), shares_strategy),
    works=st.dictionaries(st.integers(1, 20), shares_strategy, max_size=4),
    link_weights=st.lists(st.integers(1, 100), min_size=4, max_size=4),
    publishing_bp=st.integers(0, 10_000),
)
def test_a_recordings_amount_is_conserved_over_both_sides_to_the_minor_unit(
    amount, master, works, link_weights, publishing_bp
):
    links = _to_basis_points(dict(zip(works, link_weights, strict=False))) if works else {}
    rights = RecordingRights(master=master, works={w: (links[w], works[w]) for w in works})
    parts = split_recording_rights(amount, rights, publishing_bp)
    assert sum(p.amount for p in parts) == amount and all(p.amount >= 0 for p in parts)
    publishing = sum(p.amount for p in parts if p.side == PUBLISHING)
    assert abs(publishing - amount * publishing_bp / 10_000) <= 1  # the sides within a unit
    if not works:  # nobody registered for the composition: its part waits, unallocated
        assert [p.holder_id for p in parts if p.side == PUBLISHING] == [None]
    if not master:
        assert [p.holder_id for p in parts if p.side == MASTER] == [None]
    for work_id, (link_bp, _) in rights.works.items():
        through = sum(p.amount for p in parts if p.work_id == work_id)
        assert abs(through - publishing * link_bp / 10_000) <= 1


def test_a_known_split_and_bad_inputs():
    rights = RecordingRights(
        master={1: 7_000, 2: 3_000},
        works={10: (6_000, {3: 5_000, 4: 5_000}), 11: (4_000, {3: 10_000})},
    )
    parts = {
        (p.side, p.holder_id, p.work_id): p.amount
        for p in split_recording_rights(1_001, rights, 5_000)
    }
    # 1001 -> master 501 (largest remainder: tie to master, listed first), publishing 500
    assert parts == {
        (MASTER, 1, None): 351, (MASTER, 2, None): 150,  # 501 * 0.7 = 350.7, 150.3
        (PUBLISHING, 3, 10): 150, (PUBLISHING, 4, 10): 150,  # 300 through work 10
        (PUBLISHING, 3, 11): 200,  # 200 through work 11
    }  # fmt: skip
    with pytest.raises(AllocationError, match="publishing part"):
        split_recording_rights(100, rights, 10_001)
    with pytest.raises(AllocationError, match="work links"):
        split_recording_rights(100, RecordingRights({1: 10_000}, {10: (5_000, {3: 10_000})}), 5_000)


# --- the ledger ---------------------------------------------------------------------------------


@pytest.fixture
def song(co_held, make_user, staff):
    """The 70/30 co-held recording embodies a work written by Ada (60%) and published by a
    publisher (40%); a 60/20/10/10 fee split with the default 50/50 publishing side."""
    writer_member, publisher_member = make_user("writer-member"), make_user("publisher-member")
    writer = rights_holder_create(name="Ada Writer", kind="person")
    publisher = rights_holder_create(name="Demo Publishing", kind="organisation", ipi="00052210040")
    rights_holder_add_member(holder=writer, user=writer_member)
    rights_holder_add_member(holder=publisher, user=publisher_member)
    work = work_create(
        actor=staff, title="Shared Theme", iswc="T-034.524.680-1",
        shares=[WorkShareSpec(writer, "composer", 6_000),
                WorkShareSpec(publisher, "publisher", 4_000)],
    )  # fmt: skip
    recording_works_set(actor=staff, recording=co_held["recording"], works={work: 10_000})
    since = timezone.now() - timedelta(days=90)
    price_list_publish(actor=staff, tiers=tiers(), effective_from=since)
    policy = split_policy_publish(
        actor=staff, direct_bp=6000, tda_pool_bp=2000, auxiliary_bp=1000, platform_bp=1000,
        effective_from=since,
    )  # fmt: skip
    assert policy.publishing_bp == 5_000  # the default
    return {**co_held, "work": work, "writer": writer, "publisher": publisher,
            "writer_member": writer_member, "publisher_member": publisher_member}  # fmt: skip


def owed(holder, **filters) -> int:
    entries = LedgerEntry.objects.filter(holder=holder, **filters)
    return -sum(entries.values_list("amount_minor", flat=True))


def charge(song, ref="gen-1"):
    return generation_fee_post(
        generation_ref=ref, verified_at=timezone.now(), distribution="commercial",
        references=[ChargedReference(song["recording"].pk, "song", 1.0)],
        training_recording_ids=[song["recording"].pk],
    )  # fmt: skip


@pytest.mark.django_db
def test_a_generation_pays_the_master_holders_and_the_works_writer_and_publisher(song):
    charge(song)  # song/commercial 1000: direct 600, auxiliary 100, TDA pool 200, platform 100
    # direct 600 -> master 300 (A 210, B 90), publishing 300 (Ada 180, publisher 120)
    # auxiliary 100 -> master 50 (A 35, B 15), publishing 50 (Ada 30, publisher 20)
    assert owed(song["holder_a"], component="ita") == 210
    assert owed(song["holder_b"], component="ita") == 90
    assert owed(song["writer"], component="ita", side="publishing", work=song["work"]) == 180
    assert owed(song["publisher"], component="ita", side="publishing") == 120
    assert owed(song["publisher"], component="auxiliary") == 20
    assert owed(song["holder_a"], side="publishing") == 0
    tda_pool_settle(generation_ref="gen-1", shares={song["recording"].pk: 1.0})
    assert (
        owed(song["writer"], component="tda") == 60
        and owed(song["holder_a"], component="tda") == 70
    )
    report = ledger_conservation_check()
    assert report.ok and report.pending_tda_pool == {"EUR": 0}


@pytest.mark.django_db
def test_a_recording_without_a_registered_work_keeps_its_publishing_part_unallocated(
    song, make_recording, staff
):
    from catalog.services.rights import rights_shares_set

    lone = make_recording("No Work Yet")
    rights_shares_set(actor=staff, recording=lone, shares={song["holder_a"]: 10_000})
    generation_fee_post(
        generation_ref="gen-lone", verified_at=timezone.now(), distribution="commercial",
        references=[ChargedReference(lone.pk, "song", 1.0)], training_recording_ids=[],
    )  # fmt: skip
    waiting = LedgerEntry.objects.filter(
        account__kind="unallocated", recording=lone, side="publishing", component="ita"
    )
    assert -sum(waiting.values_list("amount_minor", flat=True)) == 300
    assert owed(song["holder_a"]) == 300  # the master side only
    assert ledger_conservation_check().ok


@pytest.mark.django_db
def test_holds_and_reversals_keep_each_entrys_side_and_work(song, staff):
    charge(song)
    generation_payouts_hold(generation_ref="gen-1", reason="similarity flag")
    assert owed(song["writer"]) == 0 and owed(song["publisher"]) == 0
    held = LedgerEntry.objects.filter(account__kind="payouts_held", side="publishing")
    assert held.exists() and all(e.work_id == song["work"].pk for e in held)
    generation_payouts_release(actor=staff, generation_ref="gen-1", reason="reviewed")
    assert owed(song["writer"]) == 180 + 30 and owed(song["publisher"], side="publishing") == 140
    assert ledger_conservation_check().ok


@pytest.mark.django_db
def test_reports_statements_and_csv_show_each_side(song, staff, monkeypatch):
    api = APIClient()
    api.force_authenticate(song["publisher_member"])
    charge(song)
    summary = api.get(
        f"/api/royalties/holders/{song['publisher'].pk}/payouts/", {"period": THIS_MONTH}
    ).json()
    assert summary["publishing_minor"] == summary["total_minor"] == 140
    assert summary["master_minor"] == 0
    by_recording = api.get(
        f"/api/royalties/holders/{song['publisher'].pk}/payouts/recordings/",
        {"period": THIS_MONTH},
    ).json()["results"]
    assert [(r["title"], r["publishing_minor"]) for r in by_recording] == [("Shared Song", 140)]
    response = api.get(
        f"/api/royalties/holders/{song['publisher'].pk}/payouts.csv", {"period": THIS_MONTH}
    )
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert {(r["UseType"], r["RightsType"], r["ISWC"], r["Amount"]) for r in rows} == {
        ("GenerativeReference", "Publishing", "T0345246801", "1.20"),
        ("GenerativeTrainingAuxiliary", "Publishing", "T0345246801", "0.20"),
    }
    master_api = APIClient()
    master_api.force_authenticate(song["member_a"])
    master_rows = master_api.get(
        f"/api/royalties/holders/{song['holder_a'].pk}/payouts.csv", {"period": THIS_MONTH}
    ).content.decode()
    assert {r["RightsType"] for r in csv.DictReader(io.StringIO(master_rows))} == {"Master"}

    last_month = (timezone.now().replace(day=1) - timedelta(days=1)).replace(day=15)
    monkeypatch.setattr("django.utils.timezone.now", lambda: last_month)
    charge(song, ref="gen-last-month")
    monkeypatch.undo()
    statement = statement_close(
        actor=staff, holder=song["writer"], period=last_month.date().replace(day=1)
    )
    assert (statement.master_minor, statement.publishing_minor) == (0, 210)
    assert Statement.objects.get(pk=statement.pk).total_minor == 210
    totals = holder_period_totals(
        holder=song["holder_a"], period=last_month.date().replace(day=1), currency="EUR"
    )
    assert (totals.master, totals.publishing) == (210 + 35, 0)


@pytest.mark.django_db
def test_the_publishing_part_of_a_policy_is_validated(staff):
    from config.exceptions import InvalidInput
    from royalties.models import SplitPolicy

    for bad in (-1, 10_001, 2.5, True):
        with pytest.raises(InvalidInput, match="publishing side"):
            split_policy_publish(
                actor=staff, direct_bp=10_000, tda_pool_bp=0, auxiliary_bp=0, platform_bp=0,
                publishing_bp=bad,
            )  # fmt: skip
    assert not SplitPolicy.objects.exists()
    api = APIClient()
    api.force_authenticate(staff)
    response = api.post(
        "/api/royalties/split-policies/",
        {"direct_bp": 10000, "tda_pool_bp": 0, "auxiliary_bp": 0, "platform_bp": 0,
         "publishing_bp": 3000},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.json()
    assert response.json()["publishing_bp"] == 3000


@pytest.mark.django_db
def test_the_payout_page_shows_what_a_holder_earned_on_each_side(song, client):
    charge(song)
    client.force_login(song["writer_member"])
    html = client.get(f"/portal/holders/{song['writer'].pk}/payouts/").content.decode()
    assert 'data-side="publishing">2.10<' in html and 'data-side="master">0.00<' in html
