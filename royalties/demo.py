"""Demo pricing: one EUR price list and the default fee split, in force from the start of the
demo's first month. Idempotent (nothing is published twice)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib.auth.models import AbstractBaseUser

from catalog.models import Distribution, Level
from royalties.models import PriceList, SplitPolicy
from royalties.services import price_list_publish, split_policy_publish

# Cents per generation: level x (private, non-commercial, commercial).
DEMO_PRICES = {
    Level.SONG: (50, 200, 1000),
    Level.PARAMETER: (75, 300, 1500),
    Level.AUDIO: (100, 400, 2000),
    Level.TEMPORAL: (125, 500, 2500),
}
DEMO_SPLIT = {"direct_bp": 6000, "tda_pool_bp": 2000, "auxiliary_bp": 500, "platform_bp": 1500,
              "publishing_bp": 5000}  # fmt: skip
DEMO_START = datetime(2026, 1, 1, tzinfo=UTC)


def demo_pricing_seed(*, staff: AbstractBaseUser) -> dict[str, bool]:
    created = {"price_list": False, "split_policy": False}
    if not PriceList.objects.filter(currency="EUR").exists():
        price_list_publish(
            actor=staff,
            currency="EUR",
            effective_from=DEMO_START,
            tiers={
                (level.value, dist.value): amount
                for level, row in DEMO_PRICES.items()
                for dist, amount in zip(Distribution, row, strict=True)
            },
            note="demo prices",
        )
        created["price_list"] = True
    latest = SplitPolicy.objects.order_by("-effective_from").first()
    if latest is None:
        split_policy_publish(
            actor=staff, effective_from=DEMO_START, note="demo split", **DEMO_SPLIT
        )
        created["split_policy"] = True
    elif latest.publishing_bp == 0:  # a demo database from before the publishing side
        split_policy_publish(
            actor=staff, note="demo split with the publishing side (50/50)", **DEMO_SPLIT
        )
        created["split_policy"] = True
    return created


def demo_pricing_step(*, staff: AbstractBaseUser) -> str:
    """`demo_setup`'s royalties step (settings.DEMO_SETUP_STEPS): what it did, in a line."""
    created = demo_pricing_seed(staff=staff)
    return "Demo pricing: EUR price list and fee split " + (
        "published." if any(created.values()) else "already in place."
    )
