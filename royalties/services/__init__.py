"""Writes of the royalties app: price lists, split policies, ledger postings, statements.

A generation is charged once, when it completes, at the price list and split policy in force
when it was verified. The fee's direct part goes to the holders of its references (by weight,
then rights shares), the auxiliary part flat to the holders of the recordings that trained the
model, the platform part to revenue, and the TDA pool to a pending account until the
generation's training-time attribution arrives (`tda_pool_settle`). Posting is idempotent per
generation and stage; corrections are reversals, or correction postings after a dispute
(`corrections`).
"""

from royalties.services.corrections import (
    fee_direct_correct,
    recording_master_correct,
    tda_settlement_correct,
)
from royalties.services.fees import ChargedReference, FeePlan, fee_plan
from royalties.services.floors import price_floor_set
from royalties.services.holds import (
    generation_holds_reconcile,
    generation_payouts_hold,
    generation_payouts_release,
    transaction_reverse,
)
from royalties.services.inputs import LEVEL_ORDER, currency_checked
from royalties.services.postings import generation_fee_post, tda_pool_settle
from royalties.services.pricing import price_list_publish, split_policy_publish
from royalties.services.statements import statement_close

__all__ = [
    "LEVEL_ORDER",
    "ChargedReference",
    "FeePlan",
    "fee_plan",
    "price_floor_set",
    "currency_checked",
    "fee_direct_correct",
    "generation_fee_post",
    "generation_holds_reconcile",
    "generation_payouts_hold",
    "generation_payouts_release",
    "price_list_publish",
    "recording_master_correct",
    "split_policy_publish",
    "statement_close",
    "tda_pool_settle",
    "tda_settlement_correct",
    "transaction_reverse",
]
