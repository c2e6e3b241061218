"""Payout reports through the REST API: members see only their holder, staff see all; CSV;
statements; prices, splits, reversals and the ledger check."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from royalties.models import LedgerTransaction, Statement
from royalties.services import ChargedReference, generation_fee_post, tda_pool_settle
from tests.royalties.conftest import tiers

pytestmark = pytest.mark.django_db
THIS_MONTH = f"{timezone.now():%Y-%m}"


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def post_generations(rights, count=3):
    for n in range(count):
        generation_fee_post(
            generation_ref=f"gen-{n}",
            verified_at=timezone.now(),
            distribution="commercial" if n % 2 == 0 else "non_commercial",
            references=[
                ChargedReference(rights["recording"].pk, "song", 1.0),
                ChargedReference(rights["solo"].pk, "parameter", 1.0),
            ],
            training_recording_ids=[rights["recording"].pk],
        )
    tda_pool_settle(generation_ref="gen-0", shares={rights["recording"].pk: 1.0})


def url(holder, suffix=""):
    return f"/api/royalties/holders/{holder.pk}/payouts{suffix}"


def test_a_member_reads_the_payout_summary_breakdowns_and_csv(pricing, rights):
    post_generations(rights)
    api = client_for(rights["member_b"])  # holder B: 30% of the shared recording only
    summary = api.get(url(rights["holder_b"], "/"), {"period": THIS_MONTH})
    assert summary.status_code == 200, summary.json()
    body = summary.json()
    # fees: parameter/commercial 1500 (gen-0, gen-2), parameter/NC 450 (gen-1)
    # direct 60% split 1:1 -> shared recording 450, 135, 450; B gets 30%: 135 + 41 (40.5) + 135
    # auxiliary 10% to the single training recording: 150, 45, 150 -> B 45 + 14 (13.5) + 45
    # TDA pool of gen-0: 300 -> B 90
    assert body["status"] == "open" and body["currency"] == "EUR"
    assert body["ita_minor"] + body["tda_minor"] + body["auxiliary_minor"] == body["total_minor"]
    assert body["tda_minor"] == 90
    assert body["generations"] == 3
    assert body["total"] == f"{body['total_minor'] // 100}.{body['total_minor'] % 100:02d}"

    by_recording = api.get(url(rights["holder_b"], "/recordings/"), {"period": THIS_MONTH}).json()
    assert [r["recording_id"] for r in by_recording["results"]] == [rights["recording"].pk]
    assert by_recording["results"][0]["total_minor"] == body["total_minor"]
    assert by_recording["results"][0]["generations"] == 3

    by_generation = api.get(
        url(rights["holder_b"], "/generations/"),
        {"period": THIS_MONTH, "distribution": "commercial"},
    ).json()
    assert {g["generation_ref"] for g in by_generation["results"]} == {"gen-0", "gen-2"}
    gen0 = next(g for g in by_generation["results"] if g["generation_ref"] == "gen-0")
    assert gen0["tda_minor"] == 90 and gen0["level"] == "parameter"

    response = api.get(url(rights["holder_b"], ".csv"), {"period": THIS_MONTH})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert {r["UseType"] for r in rows} == {
        "GenerativeReference",
        "GenerativeTrainingAttribution",
        "GenerativeTrainingAuxiliary",
    }
    assert all(r["Title"] == "Shared Song" and r["Period"] == THIS_MONTH for r in rows)
    usages = {(r["UseType"], r["CommercialModel"]): int(r["Usages"]) for r in rows}
    assert usages[("GenerativeReference", "commercial")] == 2  # gen-0 and gen-2
    assert usages[("GenerativeReference", "non_commercial")] == 1
    assert usages[("GenerativeTrainingAttribution", "commercial")] == 1  # gen-0 settled
    total_cents = sum(int(r["Amount"].replace(".", "")) for r in rows)
    assert total_cents == body["total_minor"]


def test_reports_of_another_holder_are_refused(pricing, rights, make_user):
    post_generations(rights)
    outsider = client_for(make_user())
    for suffix in ("/", "/recordings/", "/generations/", ".csv"):
        response = client_for(rights["member_b"]).get(
            url(rights["holder_a"], suffix), {"period": THIS_MONTH}
        )
        assert response.status_code in (403, 404), suffix
        assert "error" in response.json()
        assert outsider.get(
            url(rights["holder_b"], suffix), {"period": THIS_MONTH}
        ).status_code in (
            403,
            404,
        )


def test_staff_read_every_holder(pricing, rights, staff):
    post_generations(rights)
    response = client_for(staff).get(url(rights["holder_a"], "/"), {"period": THIS_MONTH})
    assert response.status_code == 200 and response.json()["total_minor"] > 0


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({}, "YYYY-MM"),
        ({"period": "2026-13"}, "YYYY-MM"),
        ({"period": "November"}, "YYYY-MM"),
        ({"period": THIS_MONTH, "currency": "ZZZ"}, "unknown currency"),
    ],
)
def test_malformed_report_requests_are_400(pricing, rights, params, fragment):
    response = client_for(rights["member_a"]).get(url(rights["holder_a"], "/"), params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert fragment in error["message"] + str(error["details"])


def test_closing_a_month_freezes_its_statement(pricing, rights, staff, monkeypatch):
    last_month = (timezone.now().replace(day=1) - timedelta(days=1)).replace(day=15)
    monkeypatch.setattr("django.utils.timezone.now", lambda: last_month)
    post_generations(rights, count=2)  # booked last month
    monkeypatch.undo()
    period = f"{last_month:%Y-%m}"
    close = f"/api/royalties/holders/{rights['holder_a'].pk}/statements/{period}/close/"

    assert client_for(rights["member_a"]).post(close).status_code == 403
    current = f"/api/royalties/holders/{rights['holder_a'].pk}/statements/{THIS_MONTH}/close/"
    assert "has not ended" in client_for(staff).post(current).json()["error"]["message"]

    closed = client_for(staff).post(close)
    assert closed.status_code == 201, closed.json()
    statement = Statement.objects.get()
    summary = client_for(rights["member_a"]).get(url(rights["holder_a"], "/"), {"period": period})
    assert summary.json()["status"] == "closed"
    assert summary.json()["statement"]["total_minor"] == statement.total_minor > 0
    assert summary.json()["total_minor"] == statement.total_minor
    assert client_for(staff).post(close).status_code == 409

    # new postings are booked now, so the closed month does not move
    post_generations(rights, count=3)
    again = client_for(rights["member_a"]).get(url(rights["holder_a"], "/"), {"period": period})
    assert again.json()["total_minor"] == statement.total_minor


def test_staff_publish_prices_and_splits_others_cannot(staff, make_user):
    body = {
        "currency": "EUR",
        "effective_from": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
        "tiers": [
            {"level": lv, "distribution": di, "amount_minor": amount}
            for (lv, di), amount in tiers().items()
        ],
    }
    assert (
        client_for(make_user()).post("/api/royalties/price-lists/", body, format="json").status_code
        == 403
    )
    created = client_for(staff).post("/api/royalties/price-lists/", body, format="json")
    assert created.status_code == 201, created.json()
    assert len(created.json()["tiers"]) == 12
    listed = client_for(make_user()).get("/api/royalties/price-lists/").json()
    assert listed["count"] == 1

    bad = {**body, "tiers": body["tiers"][:-1]}
    response = client_for(staff).post("/api/royalties/price-lists/", bad, format="json")
    assert response.status_code == 400 and response.json()["error"]["details"]["missing"]

    split = {"direct_bp": 6000, "tda_pool_bp": 2000, "auxiliary_bp": 1000, "platform_bp": 999}
    response = client_for(staff).post("/api/royalties/split-policies/", split, format="json")
    assert response.status_code == 400 and "9999" in response.json()["error"]["message"]
    split["platform_bp"] = 1000
    assert (
        client_for(staff).post("/api/royalties/split-policies/", split, format="json").status_code
        == 201
    )


def test_reversal_and_ledger_check_through_the_api(pricing, rights, staff, make_user):
    post_generations(rights, count=1)
    settlement = LedgerTransaction.objects.get(kind="tda_settlement")
    reverse = f"/api/royalties/transactions/{settlement.pk}/reverse/"
    assert client_for(make_user()).post(reverse, {"reason": "x"}).status_code == 403
    assert client_for(staff).post(reverse, {}).status_code == 400
    response = client_for(staff).post(reverse, {"reason": "scores recomputed"})
    assert response.status_code == 201 and response.json()["reverses"] == settlement.pk
    assert (
        client_for(staff)
        .post("/api/royalties/transactions/999999/reverse/", {"reason": "x"})
        .status_code
        == 404
    )

    check = client_for(staff).get("/api/royalties/ledger/check/").json()
    assert check["ok"] is True and check["unbalanced_transactions"] == []
    assert check["pending_tda_pool"] == {"EUR": 300}  # 20% of 1500: back in the pool
    assert client_for(make_user()).get("/api/royalties/ledger/check/").status_code == 403


def test_royalty_endpoints_are_in_the_schema(staff):
    schema = client_for(staff).get("/api/schema/", {"format": "json"}).json()
    for path in (
        "/api/royalties/holders/{holder_id}/payouts/",
        "/api/royalties/holders/{holder_id}/payouts/recordings/",
        "/api/royalties/holders/{holder_id}/payouts/generations/",
        "/api/royalties/holders/{holder_id}/payouts.csv",
        "/api/royalties/price-lists/",
        "/api/royalties/split-policies/",
    ):
        assert path in schema["paths"], path
