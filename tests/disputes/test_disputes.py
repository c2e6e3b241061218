"""Disputes (issue 21): opened by a holder or the maker with the amounts in question held at
once (balanced holds), seen by the other parties, resolved by staff (upheld: reversal and a
corrected posting, the correction in the attribution log; rejected: hold released) or expired
at the deadline; every step in an append-only hash chain; bad input changes nothing."""

from __future__ import annotations

from datetime import timedelta
from hashlib import sha256

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.utils import timezone

from attribution.models import ClipCalibration, SimilarityAudit
from attribution.services.audit import similarity_audit_release
from attribution_log.models import AttributionRecord
from attribution_log.selectors import attribution_chain_verify
from catalog.models import EncoderVersion, RightsShare
from disputes.models import Dispute, DisputeEvent
from disputes.selectors import dispute_chain_verify
from disputes.services import dispute_open, dispute_resolve, disputes_expire
from royalties.models import LedgerEntry, LedgerTransaction
from royalties.selectors import ledger_conservation_check
from royalties.services import generation_payouts_hold
from tests.disputes.conftest import client_for, make_generation

pytestmark = pytest.mark.django_db

DISPUTES = "/api/attribution/disputes/"


def owed(holder, generation: str | None = None, component: str | None = None) -> int:
    entries = LedgerEntry.objects.filter(holder=holder)
    if generation is not None:
        entries = entries.filter(generation_ref=generation)
    if component is not None:
        entries = entries.filter(component=component)
    return -sum(entries.values_list("amount_minor", flat=True))


def live_holds() -> list[LedgerTransaction]:
    return list(LedgerTransaction.objects.filter(kind="payout_hold", reversed_by__isnull=True))


def state() -> tuple:
    """Everything a refused request must leave as it was."""
    return (
        Dispute.objects.count(),
        DisputeEvent.objects.count(),
        LedgerTransaction.objects.count(),
        LedgerEntry.objects.count(),
        AttributionRecord.objects.count(),
        sorted(RightsShare.objects.values_list("recording_id", "holder_id", "basis_points")),
        sorted(SimilarityAudit.objects.values_list("generation_ref", "payouts_held")),
        sorted(Dispute.objects.values_list("pk", "status")),
    )


def assert_balanced() -> None:
    report = ledger_conservation_check()
    assert report.ok, report
    for tx in LedgerTransaction.objects.all():
        assert sum(tx.entries.values_list("amount_minor", flat=True)) == 0, tx.key


def open_tda(world, **overrides) -> dict:
    body = {
        "subject": "tda_shares",
        "generation": world["generation"],
        "recording": world["t1"].pk,
        "holder": world["holder_a"].pk,
        "reason": "my recording shaped it more than 75%? far more: listen to the bass line",
        **overrides,
    }
    return body


# -- the TDA share dispute, end to end -------------------------------------------------------


def test_a_holder_disputes_a_tda_share_it_is_held_at_once_and_staff_uphold_it(world):
    a, b, ref = world["holder_a"], world["holder_b"], world["generation"]
    assert owed(a, ref, "tda") == 150 and owed(b, ref, "tda") == 50
    direct_a = owed(a, ref, "ita")

    response = client_for(world["member_a"]).post(DISPUTES, open_tda(world), format="json")

    assert response.status_code == 201, response.content
    opened = response.json()
    assert opened["status"] == "open" and opened["subject"] == "tda_shares"
    assert opened["held_minor"] == 200  # the whole settlement: 150 to A, 50 to B
    assert [e["kind"] for e in opened["events"]] == ["opened", "held"]
    # the settlement is held, the fee is not (only the TDA part is in question)
    assert owed(a, ref, "tda") == 0 and owed(b, ref, "tda") == 0
    assert owed(a, ref, "ita") == direct_a
    assert len(live_holds()) == 1
    assert_balanced()

    # the other parties see it: B (paid by the settlement) and the maker; C does not
    dispute_id = opened["id"]
    for user in (world["member_b"], world["maker"]):
        listed = client_for(user).get(DISPUTES).json()["results"]
        assert [d["id"] for d in listed] == [dispute_id]
    outsider = client_for(world["member_c"])
    assert outsider.get(DISPUTES).json()["results"] == []
    assert outsider.get(f"{DISPUTES}{dispute_id}/").status_code == 404

    # staff uphold it with corrected shares: the settlement is reversed and settled anew
    staff = client_for(world["staff"])
    resolved = staff.post(
        f"{DISPUTES}{dispute_id}/resolve/",
        {
            "outcome": "upheld",
            "note": "the bass line is t1's; half each",
            "shares": {str(world["t1"].pk): 1, str(world["t2"].pk): 1},
        },
        format="json",
    )
    assert resolved.status_code == 200, resolved.content
    body = resolved.json()
    assert body["status"] == "upheld" and body["held_minor"] == 0
    assert body["correction"]["was_paid_minor"] == {str(world["t1"].pk): 150,
                                                    str(world["t2"].pk): 50}  # fmt: skip
    assert body["correction"]["now_paid_minor"] == {str(world["t1"].pk): 100,
                                                    str(world["t2"].pk): 100}  # fmt: skip
    assert owed(a, ref, "tda") == 100 and owed(b, ref, "tda") == 100
    assert owed(a, ref, "ita") == direct_a
    assert live_holds() == []
    assert [e["kind"] for e in body["events"]] == ["opened", "held", "upheld"]
    assert_balanced()
    settlements = LedgerTransaction.objects.filter(generation_ref=ref, kind="tda_settlement")
    assert settlements.count() == 2 and settlements.filter(reversed_by__isnull=True).count() == 1

    # the correction is in the attribution log, naming the record it corrects; nothing edited
    correction = AttributionRecord.objects.get(kind="correction", generation_ref=ref)
    original = AttributionRecord.objects.get(kind="generation", generation_ref=ref)
    assert correction.payload["corrects"] == {
        "sequence": original.sequence,
        "record_hash": original.record_hash,
    }
    assert correction.payload["dispute"] == dispute_id
    assert correction.payload["correction"]["now_paid_minor"][str(world["t2"].pk)] == 100
    assert correction.payload["requested_by"] == world["maker"].pk
    event = body["events"][-1]
    assert event["payload"]["attribution_record"]["sequence"] == correction.sequence
    assert attribution_chain_verify().ok and dispute_chain_verify().ok


def test_a_rejected_dispute_releases_its_hold_and_changes_nothing_else(world):
    a, ref = world["holder_a"], world["generation"]
    dispute_open(user=world["member_a"], **_open_args(world))
    rejected = dispute_resolve(
        actor=world["staff"], dispute_id=Dispute.objects.get().pk, outcome="rejected",
        note="the scores clear their noise; t1's share stands",
    )  # fmt: skip
    assert rejected.status == "rejected" and rejected.correction == {}
    assert owed(a, ref, "tda") == 150 and owed(world["holder_b"], ref, "tda") == 50
    assert live_holds() == [] and not AttributionRecord.objects.filter(kind="correction").exists()
    assert LedgerTransaction.objects.filter(kind="tda_settlement").count() == 1
    assert [e.kind for e in rejected.events.order_by("sequence")] == ["opened", "held", "rejected"]
    assert_balanced()
    assert dispute_chain_verify().ok


def _open_args(world, **overrides) -> dict:
    body = open_tda(world, **overrides)
    return {
        "subject": body["subject"],
        "generation_ref": body["generation"],
        "recording_id": body["recording"],
        "holder_id": body["holder"],
        "reason": body["reason"],
    }


# -- the other subjects -------------------------------------------------------------------------


def test_the_maker_disputes_the_direct_attribution_and_staff_reweigh_it(world):
    a, b, ref = world["holder_a"], world["holder_b"], world["generation"]
    assert owed(a, ref, "ita") == 400 and owed(b, ref, "ita") == 200
    dispute = dispute_open(
        user=world["maker"], subject="direct_attribution", generation_ref=ref,
        reason="I set r2's weight to 1 by mistake; both shaped it equally",
    )  # fmt: skip
    # the fee is held whole (its auxiliary part with it); the settlement is not in question
    assert owed(a, ref, "ita") == 0 and owed(a, ref, "auxiliary") == 0
    assert owed(a, ref, "tda") == 150
    assert_balanced()

    dispute_resolve(
        actor=world["staff"], dispute_id=dispute.pk, outcome="upheld", note="equal weights",
        weights={str(world["r1"].pk): 1.0, str(world["r2"].pk): 1.0},
    )  # fmt: skip
    assert owed(a, ref, "ita") == 300 and owed(b, ref, "ita") == 300
    assert owed(a, ref, "auxiliary") == 50 and owed(b, ref, "auxiliary") == 50
    assert live_holds() == []
    assert_balanced()

    # a second dispute on the same item, later, corrects the corrected: it supersedes it
    again = dispute_open(
        user=world["member_a"], subject="direct_attribution", generation_ref=ref,
        holder_id=world["holder_a"].pk, reason="r2 was muted in the end",
    )  # fmt: skip
    dispute_resolve(actor=world["staff"], dispute_id=again.pk, outcome="upheld",
                    note="only r1 is audible", weights={str(world["r1"].pk): 1.0})  # fmt: skip
    assert owed(a, ref, "ita") == 600 and owed(b, ref, "ita") == 0
    first, second = AttributionRecord.objects.filter(kind="correction").order_by("sequence")
    assert second.payload["supersedes"] == {
        "sequence": first.sequence,
        "record_hash": first.record_hash,
    }
    assert_balanced()


def test_a_similarity_flag_dispute_upheld_lifts_the_audit_hold(world):
    a, b, ref = world["holder_a"], world["holder_b"], world["generation"]
    owed_before = owed(a, ref), owed(b, ref)
    _flag(ref, world["maker"])
    assert owed(a, ref) == 0 and owed(b, ref) == 0
    dispute = dispute_open(
        user=world["member_b"], subject="similarity_flag", generation_ref=ref,
        holder_id=b.pk, reason="the flagged match is a public-domain drum break",
    )  # fmt: skip
    assert owed(b, ref) == 0  # still held, by the flag and the dispute
    dispute_resolve(actor=world["staff"], dispute_id=dispute.pk, outcome="upheld",
                    note="public-domain break: no copy")  # fmt: skip
    assert not SimilarityAudit.objects.get(generation_ref=ref).payouts_held
    assert (owed(a, ref), owed(b, ref)) == owed_before
    assert live_holds() == []
    correction = AttributionRecord.objects.get(kind="correction")
    assert correction.payload["correction"]["subject"] == "similarity_flag"
    assert_balanced()


def _flag(ref: str, maker) -> SimilarityAudit:
    """A done audit that flagged the generation and holds its payouts (as its run leaves it)."""
    encoder = EncoderVersion.objects.create(
        name=f"tiny-{ref[:8]}", version="1", checkpoint_path="x", checkpoint_sha256="0" * 64
    )
    calibration = ClipCalibration.objects.create(
        encoder=encoder, clip_seconds=1.5, hop_seconds=0.75, clip_count=10, recording_count=2,
        sampled_clips=10, top_n=1, mean=0.5, std=0.1, random_mean=0.1, random_std=0.1,
        thresholds={"mean+2sigma": 0.7},
    )  # fmt: skip
    generation_payouts_hold(generation_ref=ref, reason="similarity audit flag")
    return SimilarityAudit.objects.create(
        generation_ref=ref, generation_requested_by=maker.pk, model_version_id=1,
        status="done", flagged=True, payouts_held=True, calibration=calibration,
        threshold_name="mean+2sigma", threshold_value=0.7,
    )  # fmt: skip


def test_an_audit_release_keeps_what_an_open_dispute_still_holds(world):
    a, b, ref = world["holder_a"], world["holder_b"], world["generation"]
    dispute = dispute_open(user=world["member_a"], **_open_args(world))
    _flag(ref, world["maker"])  # the flag holds the rest (the fee)
    assert owed(a, ref) == 0 and owed(b, ref) == 0
    assert len(live_holds()) == 2
    similarity_audit_release(actor=world["staff"], generation_ref=ref, reason="no copy")
    # the fee is released; the settlement stays held for the TDA dispute
    assert owed(a, ref, "ita") == 400 and owed(a, ref, "tda") == 0 and owed(b, ref, "tda") == 0
    assert_balanced()
    dispute_resolve(actor=world["staff"], dispute_id=dispute.pk, outcome="rejected",
                    note="shares stand")  # fmt: skip
    assert owed(a, ref, "tda") == 150 and live_holds() == []
    assert_balanced()


def test_an_ownership_dispute_holds_the_recordings_open_payouts_and_is_corrected(world):
    a, b, staff = world["holder_a"], world["holder_b"], world["staff"]
    r1 = world["r1"]  # A's alone; A says B owns 25% of the master
    first = world["generation"]
    dispute = dispute_open(
        user=world["member_a"], subject="ownership", recording_id=r1.pk,
        holder_id=a.pk, reason="we co-own r1's master with B since the remix deal",
    )  # fmt: skip
    # r1's master payouts in every generation are held; nothing else is
    assert owed(a, first, "ita") == 0 and owed(a, first, "tda") == 150
    assert owed(b, first, "ita") == 200
    # what r1 earns while the dispute is open is held as it is posted
    later = make_generation(world, references=[(r1, 1.0)])
    assert owed(a, later, "ita") == 0
    assert_balanced()
    assert client_for(world["member_a"]).get(f"{DISPUTES}{dispute.pk}/").status_code == 200

    dispute_resolve(
        actor=staff, dispute_id=dispute.pk, outcome="upheld", note="the remix deal says 75/25",
        master_shares={str(a.pk): 7500, str(b.pk): 2500},
    )  # fmt: skip
    shares = dict(RightsShare.objects.filter(recording=r1).values_list("holder_id", "basis_points"))
    assert shares == {a.pk: 7500, b.pk: 2500}
    # the held 400 (first) and 600 (later) direct cents of r1 are paid 75/25
    assert owed(a, first, "ita") == 300 and owed(b, first, "ita") == 200 + 100
    assert owed(a, later, "ita") == 450 and owed(b, later, "ita") == 150
    assert live_holds() == []
    assert b.pk in set(Dispute.objects.get(pk=dispute.pk).parties.values_list("pk", flat=True))
    assert client_for(world["member_b"]).get(f"{DISPUTES}{dispute.pk}/").status_code == 200
    record = AttributionRecord.objects.get(kind="correction")
    assert record.generation_ref == "" and record.payload["correction"]["recording"] == r1.pk
    assert_balanced()


def test_a_deadline_nobody_acts_on_releases_the_hold(world, settings):
    settings.DISPUTE_AUTO_RELEASE_DAYS = 30
    a, ref = world["holder_a"], world["generation"]
    dispute = dispute_open(user=world["member_a"], **_open_args(world))
    assert owed(a, ref, "tda") == 0
    assert disputes_expire(now=timezone.now() + timedelta(days=29)) == []  # not yet
    expired = disputes_expire(now=timezone.now() + timedelta(days=31))
    assert [d.pk for d in expired] == [dispute.pk]
    dispute.refresh_from_db()
    assert dispute.status == "expired" and dispute.resolved_at is not None
    assert owed(a, ref, "tda") == 150 and live_holds() == []
    last = dispute.events.order_by("sequence").last()
    assert last.kind == "expired" and last.actor is None and last.payload["actor"] is None
    assert_balanced()
    assert dispute_chain_verify().ok
    # the command does the same for those due now (none left)
    call_command("expire_disputes")


# -- bad input: clear errors, nothing held or changed -------------------------------------------


@pytest.mark.parametrize(
    ("who", "overrides", "status", "message"),
    [
        ("member_c", {"holder": "holder_c"}, 404, "does not exist"),  # not its generation
        ("member_c", {"holder": None, "recording": None}, 404, "does not exist"),
        ("member_a", {"holder": "holder_b"}, 404, "rights holder"),  # not a member of B
        ("member_a", {"recording": "c_song"}, 403, "has no share in recording"),
        ("member_a", {"recording": "r1"}, 403, "not in the training attribution"),
        ("member_a", {"recording": None}, 400, "name your recording"),
        ("member_a", {"holder": None}, 400, "name the rights holder"),
        ("member_a", {"subject": "ownership", "recording": "t2"}, 403, "no master share"),
        ("member_a", {"subject": "similarity_flag"}, 409, "did not flag"),
        ("member_a", {"subject": "unknown"}, 400, "The request is invalid"),
        ("member_a", {"reason": "   "}, 400, "reason"),
        ("member_a", {"evidence_link": "javascript:alert(1)"}, 400, "The request is invalid"),
        ("member_a", {"generation": "not-a-generation"}, 404, "does not exist"),
        ("maker", {"holder": None, "subject": "ownership", "recording": "r1"}, 400, "holder"),
        (
            "member_c",
            {"holder": "holder_c", "subject": "direct_attribution", "recording": None},
            404,
            "does not exist",
        ),  # fmt: skip
    ],
)
def test_a_dispute_that_is_not_yours_to_open_is_refused_and_holds_nothing(
    world, who, overrides, status, message
):
    body = open_tda(world)
    for key, value in overrides.items():
        body[key] = world[value].pk if isinstance(value, str) and value in world else value
    body = {k: v for k, v in body.items() if v is not None}
    before = state()
    response = client_for(world[who]).post(DISPUTES, body, format="json")
    assert response.status_code == status, response.content
    assert message in str(response.json()["error"]), response.json()
    assert state() == before


def test_a_second_open_dispute_on_the_same_item_is_a_conflict(world):
    client = client_for(world["member_a"])
    assert client.post(DISPUTES, open_tda(world), format="json").status_code == 201
    before = state()
    again = client_for(world["maker"]).post(
        DISPUTES,
        {"subject": "tda_shares", "generation": world["generation"], "reason": "mine too"},
        format="json",
    )
    assert again.status_code == 409 and "already disputed" in again.json()["error"]["message"]
    assert state() == before
    # another subject of the same generation is another item
    other = client_for(world["maker"]).post(
        DISPUTES,
        {"subject": "direct_attribution", "generation": world["generation"], "reason": "weights"},
        format="json",
    )
    assert other.status_code == 201


def test_resolutions_by_non_staff_or_with_bad_corrections_change_nothing(world):
    dispute = dispute_open(user=world["member_a"], **_open_args(world))
    url = f"{DISPUTES}{dispute.pk}/resolve/"
    t1, t2 = str(world["t1"].pk), str(world["t2"].pk)
    cases = [
        (world["member_a"], {"outcome": "upheld", "note": "x", "shares": {t1: 1}}, 403),
        (world["maker"], {"outcome": "rejected", "note": "x"}, 403),
        (world["staff"], {"outcome": "upheld", "note": "no shares"}, 400),
        (
            world["staff"],
            {"outcome": "upheld", "note": "x", "shares": {str(world["c_song"].pk): 1}},
            400,
        ),  # fmt: skip
        (world["staff"], {"outcome": "upheld", "note": "x", "shares": {t1: -1, t2: 1}}, 400),
        (world["staff"], {"outcome": "upheld", "note": "x", "shares": {t1: 0, t2: 0}}, 400),
        (world["staff"], {"outcome": "upheld", "note": "x", "shares": {"abc": 1}}, 400),
        (world["staff"], {"outcome": "maybe", "note": "x"}, 400),
        (world["staff"], {"outcome": "rejected", "note": ""}, 400),
    ]
    before = state()
    held = owed(world["holder_a"], world["generation"])
    for user, body, status in cases:
        response = client_for(user).post(url, body, format="json")
        assert response.status_code == status, (body, response.content)
        assert state() == before, body
    assert owed(world["holder_a"], world["generation"]) == held
    assert (
        client_for(world["staff"])
        .post(f"{DISPUTES}999999/resolve/", {"outcome": "rejected", "note": "x"}, format="json")
        .status_code
        == 404
    )

    done = client_for(world["staff"]).post(
        url, {"outcome": "rejected", "note": "no"}, format="json"
    )
    assert done.status_code == 200
    before = state()
    twice = client_for(world["staff"]).post(url, {"outcome": "upheld", "note": "x",
                                                  "shares": {t1: 1}}, format="json")  # fmt: skip
    assert twice.status_code == 409 and state() == before
    note = client_for(world["member_a"]).post(
        f"{DISPUTES}{dispute.pk}/notes/", {"note": "late"}, format="json"
    )
    assert note.status_code == 409 and state() == before


def test_tda_disputes_wait_for_the_attribution(world):
    pending = make_generation(world, settle={})  # unattributed: nothing paid yet, done though
    response = client_for(world["member_a"]).post(
        DISPUTES, open_tda(world, generation=pending), format="json"
    )
    assert response.status_code == 201  # nobody was paid: a holder may say it should be
    assert response.json()["held_minor"] == 0
    dispute_resolve(actor=world["staff"], dispute_id=response.json()["id"], outcome="upheld",
                    note="t1 clearly", shares={str(world["t1"].pk): 1.0})  # fmt: skip
    assert owed(world["holder_a"], pending, "tda") == 200
    assert_balanced()


# -- evidence, notes, the chain -------------------------------------------------------------


def test_evidence_files_are_kept_with_their_hash_and_read_only_by_parties(world, settings):
    client = client_for(world["member_a"])
    content = b"%PDF-1.4 stems and session notes"
    upload = SimpleUploadedFile("session notes.pdf", content, content_type="application/pdf")
    body = {**open_tda(world), "evidence": upload, "evidence_link": "https://example.org/stems"}
    response = client.post(DISPUTES, body, format="multipart")
    assert response.status_code == 201, response.content
    opened = response.json()
    assert opened["evidence_sha256"] == sha256(content).hexdigest()
    assert opened["events"][0]["payload"]["evidence"]["sha256"] == opened["evidence_sha256"]
    url = f"{DISPUTES}{opened['id']}/evidence/"
    fetched = client_for(world["member_b"]).get(url)
    assert fetched.status_code == 200 and b"".join(fetched.streaming_content) == content
    assert fetched["Content-Type"] == "application/octet-stream"
    assert client_for(world["member_c"]).get(url).status_code == 404

    settings.DISPUTE_MAX_EVIDENCE_BYTES = 10
    before = state()
    big = SimpleUploadedFile("big.wav", b"x" * 11)
    refused = client_for(world["maker"]).post(
        DISPUTES,
        {"subject": "direct_attribution", "generation": world["generation"], "reason": "r",
         "evidence": big},
        format="multipart",
    )  # fmt: skip
    assert (
        refused.status_code == 400 and "larger than 10 bytes" in refused.json()["error"]["message"]
    )
    assert state() == before

    note = client_for(world["member_b"]).post(
        f"{DISPUTES}{opened['id']}/notes/", {"note": "B agrees t1's share is low"}, format="json"
    )
    assert note.status_code == 201 and note.json()["kind"] == "note"
    assert (
        client_for(world["member_c"])
        .post(f"{DISPUTES}{opened['id']}/notes/", {"note": "me too"}, format="json")
        .status_code
        == 404
    )


def test_the_event_chain_is_append_only_and_tampering_shows(world):
    dispute_open(user=world["member_a"], **_open_args(world))
    event = DisputeEvent.objects.order_by("sequence").first()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        DisputeEvent.objects.filter(pk=event.pk).update(kind="note")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        DisputeEvent.objects.filter(pk=event.pk).delete()
    assert dispute_chain_verify().ok
    report = client_for(world["staff"]).get(f"{DISPUTES}verify/").json()
    assert report["ok"] and report["checked"] == 2

    with transaction.atomic(), connection.cursor() as cursor:  # as the table's owner could
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # (deferred foreign key checks first)
        cursor.execute("ALTER TABLE disputes_disputeevent DISABLE TRIGGER USER")
        cursor.execute(
            "UPDATE disputes_disputeevent SET payload = jsonb_set(payload, '{reason}', "
            "'\"nothing\"') WHERE sequence = %s",
            [event.sequence],
        )
        cursor.execute("ALTER TABLE disputes_disputeevent ENABLE TRIGGER USER")
    broken = dispute_chain_verify()
    assert not broken.ok and broken.first_broken_sequence == event.sequence
    assert broken.reason == "payload hash mismatch"
    assert client_for(world["member_a"]).get(f"{DISPUTES}verify/").status_code == 403


def test_an_ownership_hold_and_an_audit_flag_on_one_generation_never_hold_twice(world):
    a, b, ref, staff = world["holder_a"], world["holder_b"], world["generation"], world["staff"]
    owed_a, owed_b = owed(a, ref), owed(b, ref)
    dispute = dispute_open(
        user=world["member_a"], subject="ownership", recording_id=world["r1"].pk,
        holder_id=a.pk, reason="B co-owns r1",
    )  # fmt: skip
    assert owed(a, ref) == owed_a - 400 and owed(b, ref) == owed_b  # r1's direct part
    _flag(ref, world["maker"])  # the flag holds the rest: the fee's hold becomes whole
    assert owed(a, ref) == 0 and owed(b, ref) == 0
    assert_balanced()  # no holder owed less than nothing: nothing held twice
    similarity_audit_release(actor=staff, generation_ref=ref, reason="no copy")
    assert owed(a, ref) == owed_a - 400 and owed(b, ref) == owed_b  # the dispute's part stays
    assert_balanced()
    dispute_resolve(actor=staff, dispute_id=dispute.pk, outcome="rejected", note="A's alone")
    assert (owed(a, ref), owed(b, ref)) == (owed_a, owed_b) and live_holds() == []
    assert_balanced()
