"""Issue 21 in a real browser: a rights holder disputes the TDA share of its recording in a
generation through the portal; the share is held at once (its payouts page shows it gone, the
maker's receipt shows the dispute); staff uphold it on the staff pages with corrected shares;
the holder's payouts reflect the correction, the ledger stays balanced and the correction is in
the attribution log. A real Celery worker runs the tiny generator trained by `studio`; the
training-time attribution runs in process as `manage.py attribute_generation` would."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from attribution.models import TrainingAttribution
from attribution.services.training import training_attribution_run_here
from attribution_log.models import AttributionRecord
from attribution_log.selectors import attribution_chain_verify
from catalog.services.consent import consent_grant
from catalog.services.rights import rights_shares_set
from disputes.models import Dispute
from disputes.selectors import dispute_chain_verify
from royalties.allocation import split_largest_remainder
from royalties.models import LedgerEntry
from royalties.selectors import format_minor, holder_period_totals, ledger_conservation_check
from tests.attribution.test_training_attribution import TINY_TDA
from tests.browser.test_portal import api_post, wait_for_generation
from tests.disputes.conftest import emptied_dispute_events_after  # noqa: F401
from tests.generation.conftest import TRAINED

pytestmark = [
    pytest.mark.browser,
    pytest.mark.celery,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("one_torch_thread", "emptied_dispute_events_after"),
]


def test_a_holder_disputes_a_tda_share_and_staff_uphold_it(
    studio, generation_worker, open_session, make_user, make_holder, shots, settings, tmp_path
):
    settings.TDA_STATE_DIR = tmp_path / "tda"
    settings.TDA_CONFIG = TINY_TDA
    settings.TDA_CHUNK_ITEMS = 2
    trained = studio["recordings"][:TRAINED]
    referenced = studio["recordings"][4]
    # an independent label holds the master of one training recording (and allows what the
    # catalogue holder allowed, so the model and the catalogue stay usable)
    indie_member = make_user("indie-member")
    indie = make_holder("Indie Label", member=indie_member)
    disputed = trained[3]
    rights_shares_set(actor=make_user("rights", staff=True), recording=disputed,
                      shares={indie: 10_000})  # fmt: skip
    consent_grant(
        actor=indie_member, holder=indie, recording=disputed,
        uses=["training", "song_inference", "parameter_inference", "audio_inference"],
        distributions=["private", "non_commercial", "commercial"],
    )  # fmt: skip

    # the music maker generates with one reference through the real API and worker
    maker_user = make_user("maker")
    maker = open_session(maker_user)
    submitted = api_post(
        maker,
        "/api/generations/",
        {"references": [{"recording": referenced.pk, "level": "song", "weight": 1.0}],
         "distribution": "commercial", "seconds": 2.0},
    )  # fmt: skip
    assert submitted.status == 201, submitted.text()
    detail = wait_for_generation(maker, submitted.json()["id"])
    assert detail["status"] == "succeeded", detail.get("failure_reason")
    ref = detail["id"]
    job = TrainingAttribution.objects.get(generation_ref=ref)
    TrainingAttribution.objects.filter(pk=job.pk).update(rule=job.rule | {"min_z": 0.0})
    job = training_attribution_run_here(job_id=job.pk)
    assert job.status == "done" and job.payout_share_kind == "topk", job.failure_reason

    period = timezone.now().date().replace(day=1)

    def indie_owed():
        return holder_period_totals(holder=indie, period=period, currency="EUR")

    before = indie_owed()
    tda_pool = -sum(
        LedgerEntry.objects.filter(
            generation_ref=ref, account__kind="pending_tda_pool", amount_minor__lt=0
        ).values_list("amount_minor", flat=True)
    )
    assert tda_pool > 0 and before.auxiliary > 0  # the label is paid: it trained the model

    # the label's member opens the dispute through the portal, from the generation's row
    page = open_session(indie_member)
    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Rights-holder portal"
    ).click()
    page.get_by_role("link", name="Disputes of Indie Label").click()
    expect(page.get_by_role("heading", name="Disputes: Indie Label")).to_be_visible()
    generations = page.get_by_role("table", name=re.compile("What each recent generation owes"))
    expect(generations.get_by_role("row").filter(has_text=ref)).to_have_count(1)
    shots(page, "portal-disputes")
    page.get_by_role("link", name=f"Dispute generation {ref}").click()
    expect(page.get_by_label("Generation (its id; not for ownership)")).to_have_value(ref)
    page.get_by_label("What is wrong").select_option("tda_shares")
    page.get_by_label("Your recording (for TDA shares and ownership)").select_option(
        str(disputed.pk)
    )
    page.get_by_label("Reason").fill(
        "The generated groove is our bass line; our recording's share should be far larger."
    )
    evidence = tmp_path / "stems-comparison.txt"
    evidence.write_text("bar 3-8: the same bass line, transposed\n")
    page.get_by_label("Evidence file (optional, up to 10 MB)").set_input_files(str(evidence))
    shots(page, "dispute-form")
    page.get_by_role("button", name="Open the dispute").click()

    page.wait_for_url(re.compile(r"/disputes/[0-9]+/$"))
    dispute = Dispute.objects.get()
    expect(page.locator("#dispute-status")).to_have_text("Open (amounts held)")
    held = -sum(
        LedgerEntry.objects.filter(
            generation_ref=ref, transaction__kind="payout_hold", account__kind="payouts_held"
        ).values_list("amount_minor", flat=True)
    )
    unallocated = -sum(
        LedgerEntry.objects.filter(
            generation_ref=ref, transaction__kind="tda_settlement", account__kind="unallocated"
        ).values_list("amount_minor", flat=True)
    )
    assert held == tda_pool - unallocated > 0  # the whole settlement is held at once
    expect(page.locator("#dispute-held")).to_have_text(format_minor(held, "EUR"))
    expect(page.locator("#dispute-events tbody tr")).to_have_count(2)  # opened, held
    expect(page.get_by_role("link", name="stems-comparison.txt")).to_be_visible()
    shots(page, "dispute-open")

    # held: the label's TDA from this generation is no longer owed
    page.goto(f"/portal/holders/{indie.pk}/payouts/")
    now = indie_owed()
    assert now.tda == 0 and now.auxiliary == before.auxiliary
    expect(page.locator("td[data-component='tda']")).to_have_text(format_minor(0, "EUR"))
    shots(page, "payouts-held")

    # the maker sees it on the receipt
    maker.goto(f"/studio/generations/{ref}/")
    disputes_card = maker.get_by_role("region", name="Disputes", exact=True)
    expect(disputes_card).to_contain_text(f"Dispute {dispute.pk}")
    expect(disputes_card).to_contain_text("opened for Indie Label")
    shots(maker, "receipt-disputed")

    # staff uphold it with corrected shares on the staff pages
    staff = open_session(make_user("reviewer", staff=True))
    nav = staff.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Disputes", exact=True).click()
    open_table = staff.get_by_role("table", name="Open disputes")
    open_table.get_by_role("link", name=f"Dispute {dispute.pk}").click()
    correction = staff.get_by_role("table", name=re.compile("Corrected TDA shares"))
    inputs = correction.locator("input")
    expect(inputs).to_have_count(TRAINED)
    prefilled = {}  # in the form's order, which is the order the shares are split in
    for n in range(TRAINED):
        field = inputs.nth(n)
        prefilled[int(field.get_attribute("name").split("-")[1])] = float(field.input_value())
    assert sum(prefilled.values()) == tda_pool  # what each recording is paid now
    # the label's recording gets half of the pool, the others share the rest as they did
    others = sum(w for rid, w in prefilled.items() if rid != disputed.pk)
    corrected = {
        rid: (1000.0 if rid == disputed.pk else round(w * 1000 / others, 6) if others else 0.0)
        for rid, w in prefilled.items()
    }
    for rid, value in corrected.items():
        staff.locator(f"#share-{rid}").fill(f"{value:.6f}")
    staff.get_by_role("radio", name=re.compile("Upheld")).check()
    staff.get_by_label("Resolution note").fill("The bass line is the label's: half the pool.")
    shots(staff, "resolve-form")
    staff.get_by_role("button", name=f"Resolve dispute {dispute.pk}").click()
    expect(staff.locator("#dispute-status")).to_have_text("Upheld (corrected)")
    expect(staff.locator("#dispute-events tbody tr")).to_have_count(3)
    shots(staff, "dispute-upheld")

    # the label's payouts reflect the correction; everything balances; the log has it
    shares = {rid: float(f"{value:.6f}") for rid, value in corrected.items() if value > 0}
    expected = split_largest_remainder(tda_pool, shares)[disputed.pk]
    result = staff.get_by_role("table", name="What the corrected part pays each recording")
    expect(result.get_by_role("row").filter(has_text=disputed.title)).to_contain_text(
        format_minor(expected, "EUR")
    )
    after = indie_owed()
    assert after.tda == expected > 0
    assert after.auxiliary == before.auxiliary
    page.goto(f"/portal/holders/{indie.pk}/payouts/")
    expect(page.locator("td[data-component='tda']")).to_have_text(format_minor(expected, "EUR"))
    expect(
        page.locator(f"table.payouts-by-recording tr[data-recording='{disputed.pk}']")
    ).to_contain_text(format_minor(expected, "EUR"))
    shots(page, "payouts-corrected")
    assert ledger_conservation_check().ok
    assert not LedgerEntry.objects.filter(
        transaction__kind="payout_hold", transaction__reversed_by__isnull=True
    ).exists()
    record = AttributionRecord.objects.get(kind="correction", generation_ref=ref)
    assert record.payload["dispute"] == dispute.pk
    assert (
        record.payload["corrects"]["record_hash"]
        == AttributionRecord.objects.get(kind="generation", generation_ref=ref).record_hash
    )
    assert attribution_chain_verify().ok and dispute_chain_verify().ok
