from datetime import timedelta

import pytest
from django.utils import timezone

from catalog.models import Distribution, Level
from catalog.services.rights import rights_shares_set
from royalties.services import price_list_publish, split_policy_publish

# Cents per generation, by level (rows) and distribution (columns: private, NC, commercial).
PRICES = {
    Level.SONG: (100, 300, 1000),
    Level.PARAMETER: (150, 450, 1500),
    Level.AUDIO: (200, 600, 2000),
    Level.TEMPORAL: (250, 750, 2500),
}


def tiers(prices=PRICES) -> dict:
    return {
        (level.value, dist.value): amount
        for level, row in prices.items()
        for dist, amount in zip(Distribution, row, strict=True)
    }


@pytest.fixture
def pricing(staff):
    """Prices and a 60/20/10/10 split, in force for the last 90 days."""
    since = timezone.now() - timedelta(days=90)
    return {
        "prices": price_list_publish(actor=staff, tiers=tiers(), effective_from=since),
        "split": split_policy_publish(
            actor=staff,
            direct_bp=6000,
            tda_pool_bp=2000,
            auxiliary_bp=1000,
            platform_bp=1000,
            # masters only: these fixtures test the fee's way to master holders; the
            # publishing side has its own tests (test_publishing_side.py)
            publishing_bp=0,
            effective_from=since,
        ),
        "since": since,
    }


@pytest.fixture
def rights(co_held, make_recording, make_holder, staff):
    """Three recordings: one 70/30 co-held (A, B), one solely A's, one with no shares yet."""
    solo = make_recording("Solo Song")
    rights_shares_set(actor=staff, recording=solo, shares={co_held["holder_a"]: 10_000})
    orphan = make_recording("Orphan Song")
    return {**co_held, "solo": solo, "orphan": orphan}
