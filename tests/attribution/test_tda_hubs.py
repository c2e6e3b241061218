"""The TDA hub watch (attribution.selectors.tda_hub_watch, /attribution/hubs/, manage.py
tda_hub_watch): a recording paid in 9 of 10 generations among 20 training recordings with a
paid top-2 is flagged and no other is; its mean share is exact; unattributed pools are counted;
rows written before `shares["payout"]` fall back to the payout kind; staff only."""

from __future__ import annotations

import json
import math
import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from attribution.models import TrainingAttribution
from attribution.selectors import tda_hub_watch
from config.exceptions import InvalidInput, NotFound

MAIN, OTHER = 7, 8  # model version ids (TDA jobs keep the id, not a foreign key)
HUB_SHARES = [0.5 + 0.04 * i for i in range(9)]  # the hub's share in generations 0..8


def job(
    recordings: list[int],
    *,
    model_version_id: int = MAIN,
    payout: dict[int, float] | None = None,
    shares: dict | None = None,
    kind: str = "topk",
    status: str = TrainingAttribution.Status.DONE,
) -> TrainingAttribution:
    if shares is None:
        shares = {"payout": {str(r): s for r, s in (payout or {}).items()}}
    return TrainingAttribution.objects.create(
        generation_ref=str(uuid.uuid4()),
        generation_requested_by=1,
        model_version_id=model_version_id,
        model_checkpoint_sha256="0" * 64,
        config={},
        status=status,
        scores={str(r): 0.01 * i for i, r in enumerate(recordings)},
        shares=shares,
        payout_share_kind=kind,
    )


@pytest.fixture
def jobs(make_recording):
    """MAIN: 10 generations over 20 recordings, 2 paid in each: the hub in 9 of them, `often`
    in 3 (ratio 3 but z 2.1), 8 others once. OTHER: 2 unattributed pools, 1 row from before
    shares["payout"] (topk paid), 1 without any payout split (skipped)."""
    recordings = [make_recording(f"Track {i}").pk for i in range(19)]
    hub = make_recording("The Hub Song", artist="Hub Artist").pk
    recordings.append(hub)
    often, others = recordings[0], recordings[1:9]
    partners = [often, often, often, *others[:6]]
    for share, partner in zip(HUB_SHARES, partners, strict=True):
        job(recordings, payout={hub: share, partner: 1 - share})
    job(recordings, payout={others[6]: 0.6, others[7]: 0.4})  # the one without the hub
    job(recordings, status=TrainingAttribution.Status.RUNNING, payout={hub: 1.0})  # not done

    topk = {str(r): 0.0 for r in recordings} | {str(often): 0.7, str(hub): 0.3}
    softmax = {str(r): 1 / 20 for r in recordings}
    job(recordings, model_version_id=OTHER, payout={})
    job(recordings, model_version_id=OTHER, payout={})
    job(recordings, model_version_id=OTHER, shares={"topk": topk, "softmax": softmax})
    job(recordings, model_version_id=OTHER, shares={"softmax": softmax}, kind="")
    return {"hub": hub, "often": often, "others": others, "recordings": recordings}


def rows_by_id(report: dict) -> dict[int, dict]:
    return {row["recording_id"]: row for row in report["rows"]}


@pytest.mark.django_db
def test_the_hub_is_flagged_and_nothing_else(jobs):
    report = tda_hub_watch()  # default: the model version with the most done jobs
    assert report["model_version_id"] == MAIN
    assert report["model_versions"] == [{"id": MAIN, "done": 10}, {"id": OTHER, "done": 4}]
    assert report["generations"] == 10 and report["training_recordings"] == 20
    assert report["unattributed"] == 0 and report["skipped"] == 0
    assert report["mean_paid"] == pytest.approx(2.0)
    assert report["expected_rate"] == pytest.approx(0.1)
    assert report["flagged"] == 1

    rows = rows_by_id(report)
    assert len(rows) == 20
    hub = rows[jobs["hub"]]
    assert report["rows"][0] is hub  # flagged first
    assert hub["flagged"] and hub["title"] == "The Hub Song" and hub["artist"] == "Hub Artist"
    assert hub["count"] == 9 and hub["rate"] == pytest.approx(0.9)
    assert hub["ratio"] == pytest.approx(9.0)
    assert hub["z"] == pytest.approx((9 - 10 * 0.1) / math.sqrt(10 * 0.1 * 0.9))
    assert hub["mean_share"] == pytest.approx(sum(HUB_SHARES) / 10, abs=1e-12)

    often = rows[jobs["often"]]
    assert often["count"] == 3 and often["ratio"] == pytest.approx(3.0)
    assert often["z"] == pytest.approx(2 / math.sqrt(0.9)) and not often["flagged"]
    assert often["mean_share"] == pytest.approx(sum(1 - s for s in HUB_SHARES[:3]) / 10)
    assert report["rows"][1] is often  # then by times paid
    for rid in jobs["others"]:
        assert rows[rid]["count"] == 1 and not rows[rid]["flagged"]
    never = [r for r in report["rows"] if r["count"] == 0]
    assert len(never) == 20 - 1 - 1 - 8
    assert all(r["mean_share"] == 0 and r["ratio"] == 0 and not r["flagged"] for r in never)

    # the thresholds are what decide: a lower z flags `often` too (ratio 3 >= 3, z 2.1 >= 2)
    lower = tda_hub_watch(model_version_id=MAIN, min_z=2.0)
    assert {r["recording_id"] for r in lower["rows"] if r["flagged"]} == {
        jobs["hub"],
        jobs["often"],
    }
    assert tda_hub_watch(flag_ratio=10.0)["flagged"] == 0
    assert tda_hub_watch(min_generations=11)["flagged"] == 0  # too few generations to say


@pytest.mark.django_db
def test_unattributed_pools_counted_and_old_rows_fall_back_to_the_payout_kind(jobs):
    report = tda_hub_watch(model_version_id=OTHER)
    assert report["generations"] == 3 and report["unattributed"] == 2 and report["skipped"] == 1
    assert report["mean_paid"] == pytest.approx(2 / 3)
    assert report["expected_rate"] == pytest.approx(2 / 3 / 20)
    rows = rows_by_id(report)
    # topk (the row's payout kind) was paid, not softmax (which would pay all 20)
    assert sum(r["count"] for r in report["rows"]) == 2
    assert rows[jobs["often"]]["count"] == 1
    assert rows[jobs["often"]]["mean_share"] == pytest.approx(0.7 / 3)
    assert rows[jobs["hub"]]["mean_share"] == pytest.approx(0.3 / 3)
    assert report["flagged"] == 0  # ratio 10 but z 2.9 < 3


@pytest.mark.django_db
def test_unknown_model_version_no_jobs_and_bad_thresholds():
    with pytest.raises(NotFound, match="no training attribution job is done yet"):
        tda_hub_watch()
    with pytest.raises(CommandError, match="no training attribution job is done yet"):
        call_command("tda_hub_watch", stdout=StringIO())
    job([1, 2], payout={1: 1.0})
    with pytest.raises(NotFound, match="model version 999 has no done"):
        tda_hub_watch(model_version_id=999)
    with pytest.raises(InvalidInput):
        tda_hub_watch(flag_ratio=float("nan"))


@pytest.mark.django_db
def test_staff_page(jobs, make_user, staff):
    for user in (make_user("maker"), None):
        other = Client()
        if user is not None:
            other.force_login(user)
        response = other.get("/attribution/hubs/")
        assert response.status_code == 302 and "/admin/login/" in response["Location"]

    client = Client()
    client.force_login(staff)
    page = client.get("/attribution/hubs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "loss rises under almost any unlearning update" in html
    assert 'href="/attribution/hubs/"' in html  # in the staff navigation
    assert html.count('<tr class="flag">') == 1
    flagged_row = html[html.index('<tr class="flag">') :].split("</tr>")[0]
    assert f"{jobs['hub']}: The Hub Song (Hub Artist)" in flagged_row
    assert f'<option value="{MAIN}" selected>' in html

    other_version = client.get("/attribution/hubs/", {"model_version": OTHER})
    assert other_version.status_code == 200
    assert '<tr class="flag">' not in other_version.content.decode()
    assert "2 with the pool unattributed" in other_version.content.decode()
    both = client.get("/attribution/hubs/", {"model_version": MAIN, "min_z": "2"})
    assert both.content.decode().count('<tr class="flag">') == 2

    unknown = client.get("/attribution/hubs/", {"model_version": "999"})
    assert unknown.status_code == 404 and "model version 999" in unknown.content.decode()
    assert client.get("/attribution/hubs/", {"flag_ratio": "lots"}).status_code == 400


@pytest.mark.django_db
def test_staff_page_without_jobs(staff):
    client = Client()
    client.force_login(staff)
    page = client.get("/attribution/hubs/")
    assert page.status_code == 200 and "no training attribution job is done yet" in (
        page.content.decode()
    )


@pytest.mark.django_db
def test_command_prints_the_hub_and_writes_json(jobs, tmp_path):
    out = StringIO()
    path = tmp_path / "hubs.json"
    call_command("tda_hub_watch", "--json", str(path), stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"model version {MAIN}: 10 generations") and "1 flagged" in lines[0]
    hub_lines = [line for line in lines if line.startswith("HUB")]
    assert len(hub_lines) == 1 and f"{jobs['hub']}: The Hub Song (Hub Artist)" in hub_lines[0]
    assert "9.00" in hub_lines[0]  # the ratio
    saved = json.loads(path.read_text())
    assert saved["rows"][0]["recording_id"] == jobs["hub"] and saved["rows"][0]["flagged"]
    assert saved["rows"][0]["count"] == 9 and saved["flagged"] == 1

    out = StringIO()
    call_command("tda_hub_watch", "--model-version", str(OTHER), stdout=out)
    assert "2 unattributed, 1 skipped" in out.getvalue() and "HUB" not in out.getvalue()
    with pytest.raises(CommandError, match="model version 999 has no done"):
        call_command("tda_hub_watch", "--model-version", "999", stdout=StringIO())
