"""Ledger postings: exact splits to holders, idempotency, the pending TDA pool, reversals, and
the database's own guarantees (balanced, append-only)."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from config.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from royalties.models import Account, LedgerEntry, LedgerTransaction
from royalties.selectors import ledger_conservation_check
from royalties.services import (
    ChargedReference,
    generation_fee_post,
    price_list_publish,
    split_policy_publish,
    tda_pool_settle,
    transaction_reverse,
)
from tests.royalties.conftest import tiers

pytestmark = pytest.mark.django_db


def owed(holder) -> dict[str, int]:
    """What a holder is owed per component."""
    out: dict[str, int] = {}
    for e in LedgerEntry.objects.filter(holder=holder):
        out[e.component] = out.get(e.component, 0) - e.amount_minor
    return out


def balance(kind: str) -> int:
    return sum(
        LedgerEntry.objects.filter(account__kind=kind).values_list("amount_minor", flat=True)
    )


def charge(rights, ref="gen-1", level="song", distribution="commercial", training=None, **kw):
    return generation_fee_post(
        generation_ref=ref,
        verified_at=kw.pop("verified_at", timezone.now()),
        distribution=distribution,
        references=kw.pop(
            "references",
            [
                ChargedReference(rights["recording"].pk, level, 2.0),
                ChargedReference(rights["solo"].pk, "song", 1.0),
            ],
        ),
        training_recording_ids=training
        if training is not None
        else [rights["recording"].pk, rights["solo"].pk],
        **kw,
    )


def test_a_fee_is_split_exactly_to_holders_pool_and_platform(pricing, rights):
    tx = charge(rights)  # song/commercial: 1000 cents; direct 600 split 2:1 -> 400 / 200

    assert sum(e.amount_minor for e in tx.entries.all()) == 0
    assert balance(Account.Kind.RECEIVABLE) == 1000
    # shared song 400 direct 70/30 -> A 280, B 120; solo 200 -> A.
    # auxiliary 100 flat over 2 training recordings: 50 each -> shared 35/15, solo 50 -> A.
    assert owed(rights["holder_a"]) == {"ita": 280 + 200, "auxiliary": 35 + 50}
    assert owed(rights["holder_b"]) == {"ita": 120, "auxiliary": 15}
    assert balance(Account.Kind.PENDING_TDA_POOL) == -200
    assert balance(Account.Kind.PLATFORM_REVENUE) == -100
    assert tx.price_list == pricing["prices"] and tx.split_policy == pricing["split"]
    assert {e.level for e in tx.entries.all()} == {"song"}


def test_the_generation_pays_its_most_intrusive_level(pricing, rights):
    tx = charge(rights, level="temporal", distribution="private")  # temporal/private: 250
    assert tx.entries.get(account__kind=Account.Kind.RECEIVABLE).amount_minor == 250


def test_posting_is_idempotent_per_generation(pricing, rights):
    first = charge(rights)
    again = charge(rights)
    assert again.pk == first.pk
    assert LedgerTransaction.objects.count() == 1
    assert balance(Account.Kind.RECEIVABLE) == 1000


def test_the_tier_in_force_at_verification_is_charged(pricing, rights, staff):
    verified = timezone.now() - timedelta(hours=1)
    doubled = {k: v * 2 for k, v in tiers().items()}
    price_list_publish(actor=staff, tiers=doubled, effective_from=timezone.now())
    old = charge(rights, ref="verified-before", verified_at=verified)
    new = charge(rights, ref="verified-after")
    assert old.entries.get(account__kind="receivable").amount_minor == 1000
    assert new.entries.get(account__kind="receivable").amount_minor == 2000


def test_recordings_without_shares_and_models_without_training_set_go_unallocated(pricing, rights):
    tx = charge(
        rights,
        references=[ChargedReference(rights["orphan"].pk, "song", 1.0)],
        training=[],
    )
    unallocated = tx.entries.filter(account__kind=Account.Kind.UNALLOCATED)
    assert sorted(e.amount_minor for e in unallocated) == [-600, -100]
    assert unallocated.get(amount_minor=-600).recording == rights["orphan"]
    assert not LedgerEntry.objects.filter(holder__isnull=False).exists()


def test_tda_pool_waits_then_goes_to_training_holders_by_score(pricing, rights):
    charge(rights)
    assert balance(Account.Kind.PENDING_TDA_POOL) == -200
    settlement = tda_pool_settle(
        generation_ref="gen-1", shares={rights["recording"].pk: 0.75, rights["solo"].pk: 0.25}
    )
    assert balance(Account.Kind.PENDING_TDA_POOL) == 0
    # 150 to the shared song (70/30 -> 105/45), 50 to the solo song (A)
    assert owed(rights["holder_a"])["tda"] == 105 + 50
    assert owed(rights["holder_b"])["tda"] == 45
    assert tda_pool_settle(generation_ref="gen-1", shares={rights["solo"].pk: 1}) == settlement
    assert ledger_conservation_check().ok


def test_bad_tda_results_change_nothing(pricing, rights):
    with pytest.raises(NotFound, match="has not been charged"):
        tda_pool_settle(generation_ref="never", shares={rights["solo"].pk: 1.0})
    charge(rights)
    for shares, message in [
        ({}, "all zero"),
        ({rights["solo"].pk: -0.5, rights["recording"].pk: 1.5}, "negative"),
        ({rights["solo"].pk: float("nan")}, "nan"),
        ({999_999: 1.0}, "unknown recordings"),
        ({rights["orphan"].pk: 1.0}, "outside the model's training set"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            tda_pool_settle(generation_ref="gen-1", shares=shares)
    assert LedgerTransaction.objects.count() == 1
    assert balance(Account.Kind.PENDING_TDA_POOL) == -200


@pytest.mark.parametrize(
    "change, message",
    [
        ({"distribution": "broadcast"}, "unknown distribution"),
        ({"currency": "XYZ"}, "unknown currency"),
        ({"references": []}, "at least one reference"),
        ({"references": "bad-weight"}, "cannot be charged"),
        ({"references": "zero-weights"}, "cannot be charged"),
        ({"references": "unknown-level"}, "cannot be charged"),
        ({"references": "unknown-recording"}, "unknown recordings"),
        ({"verified_at": "before-prices"}, "no EUR price list"),
    ],
)
def test_bad_fee_postings_are_refused_and_post_nothing(pricing, rights, change, message):
    rid = rights["solo"].pk
    special = {
        "bad-weight": [ChargedReference(rid, "song", float("nan"))],
        "zero-weights": [ChargedReference(rid, "song", 0.0)],
        "unknown-level": [ChargedReference(rid, "stem", 1.0)],
        "unknown-recording": [ChargedReference(999_999, "song", 1.0)],
        "before-prices": pricing["since"] - timedelta(days=30),
    }
    change = {k: special.get(v, v) if isinstance(v, str) else v for k, v in change.items()}
    with pytest.raises(InvalidInput, match=message):
        charge(rights, **change)
    assert not LedgerTransaction.objects.exists() and not LedgerEntry.objects.exists()


def test_reversal_mirrors_the_posting_and_keeps_the_original(pricing, rights, staff, make_user):
    fee = charge(rights)
    with pytest.raises(Forbidden):
        transaction_reverse(actor=make_user(), ledger_transaction=fee, reason="refund")
    tda_pool_settle(generation_ref="gen-1", shares={rights["solo"].pk: 1.0})
    with pytest.raises(Conflict, match="TDA settlement"):
        transaction_reverse(actor=staff, ledger_transaction=fee, reason="refund")
    settlement = LedgerTransaction.objects.get(key="generation:gen-1:tda")
    transaction_reverse(actor=staff, ledger_transaction=settlement, reason="wrong scores")
    assert balance(Account.Kind.PENDING_TDA_POOL) == -200  # back in the pool
    resettled = tda_pool_settle(generation_ref="gen-1", shares={rights["recording"].pk: 1.0})
    assert resettled.key == "generation:gen-1:tda:2"
    assert owed(rights["holder_b"])["tda"] == 60
    transaction_reverse(actor=staff, ledger_transaction=resettled, reason="refund")
    reversal = transaction_reverse(actor=staff, ledger_transaction=fee, reason="refund")

    assert reversal.reverses == fee and fee.entries.count() == reversal.entries.count()
    assert owed(rights["holder_a"]) == {"ita": 0, "auxiliary": 0, "tda": 0}
    assert balance(Account.Kind.RECEIVABLE) == 0
    with pytest.raises(Conflict, match="already reversed"):
        transaction_reverse(actor=staff, ledger_transaction=fee, reason="again")
    with pytest.raises(Conflict, match="the fee of generation gen-1 was reversed"):
        tda_pool_settle(generation_ref="gen-1", shares={rights["solo"].pk: 1.0})
    assert ledger_conservation_check().ok


def check_deferred_constraints():
    """The balance trigger runs at commit; the test's transaction never commits, so ask now."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_the_database_refuses_unbalanced_transactions(pricing, rights):
    account = Account.objects.create(kind="receivable", currency="EUR")
    unbalanced = pytest.raises(IntegrityError, match="unbalanced: entries sum to 5")
    with unbalanced, transaction.atomic():
        tx = LedgerTransaction.objects.create(
            key="manual", kind="generation_fee", currency="EUR", booked_at=timezone.now()
        )
        for amount in (10, -5):
            LedgerEntry.objects.create(
                transaction=tx,
                account=account,
                amount_minor=amount,
                currency="EUR",
                component="fee",
                booked_at=tx.booked_at,
            )
        check_deferred_constraints()
    assert not LedgerTransaction.objects.exists()


def test_the_database_refuses_mixed_currencies(pricing, rights):
    eur = Account.objects.create(kind="receivable", currency="EUR")
    usd = Account.objects.create(kind="platform_revenue", currency="USD")
    mixed = pytest.raises(IntegrityError, match="mixes currencies")
    with mixed, transaction.atomic():
        tx = LedgerTransaction.objects.create(
            key="manual", kind="generation_fee", currency="EUR", booked_at=timezone.now()
        )
        for account, amount in ((eur, 10), (usd, -10)):
            LedgerEntry.objects.create(
                transaction=tx,
                account=account,
                amount_minor=amount,
                currency=account.currency,
                component="fee",
                booked_at=tx.booked_at,
            )
        check_deferred_constraints()


def test_postings_are_append_only_in_the_database(pricing, rights):
    tx = charge(rights)
    entry = tx.entries.first()
    for statement in (
        f"UPDATE royalties_ledgerentry SET amount_minor = 0 WHERE id = {entry.pk}",
        f"DELETE FROM royalties_ledgerentry WHERE id = {entry.pk}",
        f"UPDATE royalties_ledgertransaction SET memo = 'x' WHERE id = {tx.pk}",
    ):
        refused = pytest.raises(Exception, match="append-only")
        with refused, transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    assert LedgerEntry.objects.get(pk=entry.pk).amount_minor == entry.amount_minor


def test_prices_and_splits_are_validated(staff, make_user):
    with pytest.raises(Forbidden):
        price_list_publish(actor=make_user(), tiers=tiers())
    incomplete = dict(list(tiers().items())[:-1])
    with pytest.raises(InvalidInput, match="exactly one amount") as missing:
        price_list_publish(actor=staff, tiers=incomplete)
    assert missing.value.details["missing"] == ["temporal/commercial"]
    with pytest.raises(InvalidInput, match="non-negative integers"):
        price_list_publish(actor=staff, tiers={**tiers(), ("song", "private"): -5})
    with pytest.raises(InvalidInput, match="non-negative integers"):
        price_list_publish(actor=staff, tiers={**tiers(), ("song", "private"): 1.5})
    with pytest.raises(InvalidInput, match="unknown currency"):
        price_list_publish(actor=staff, tiers=tiers(), currency="DOGE")
    with pytest.raises(InvalidInput, match="sum to 10100"):
        split_policy_publish(
            actor=staff, direct_bp=6000, tda_pool_bp=2000, auxiliary_bp=1100, platform_bp=1000
        )
    with pytest.raises(Forbidden):
        split_policy_publish(
            actor=make_user(), direct_bp=10000, tda_pool_bp=0, auxiliary_bp=0, platform_bp=0
        )


def test_demo_pricing_is_published_once_and_charges_a_generation(rights, staff):
    from royalties.demo import demo_pricing_seed

    assert demo_pricing_seed(staff=staff) == {"price_list": True, "split_policy": True}
    assert demo_pricing_seed(staff=staff) == {"price_list": False, "split_policy": False}
    tx = charge(rights, ref="demo-gen")  # song/commercial at the demo's 10.00
    assert tx.entries.get(account__kind="receivable").amount_minor == 1000


def test_a_free_generation_posts_nothing_and_settles_without_error(pricing, rights, staff):
    price_list_publish(actor=staff, tiers=dict.fromkeys(tiers(), 0), effective_from=timezone.now())
    fee = charge(rights, ref="free")
    assert fee.entries.count() == 0
    settlement = tda_pool_settle(generation_ref="free", shares={rights["solo"].pk: 1.0})
    assert settlement.entries.count() == 0 and ledger_conservation_check().ok
