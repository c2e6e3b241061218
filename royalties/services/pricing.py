"""Price lists and split policies: versioned, published by staff."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from catalog.models import Distribution, Level
from config.api import BIGINT_MAX
from config.exceptions import Conflict, InvalidInput
from royalties.allocation import (
    AllocationError,
    FeeSplit,
)
from royalties.models import (
    DEFAULT_AUXILIARY_MODULES,
    PriceList,
    PriceTier,
    SplitPolicy,
)
from royalties.services.inputs import _aware, _require_staff, currency_checked

DEFAULT_PUBLISHING_BP = 5_000
# learned modules a generation can use (generation.events.UsedModule.kind)
MODULE_KINDS = ("generator", "conditioning_encoder", "text_tower", "vocoder", "autoencoder")

# --- prices and splits ------------------------------------------------------------------------


@transaction.atomic
def price_list_publish(
    *,
    actor: AbstractBaseUser,
    tiers: Mapping[tuple[str, str], int],
    currency: str | None = None,
    effective_from: datetime | None = None,
    note: str = "",
) -> PriceList:
    """A new version of the price tiers: every level x distribution, in minor units."""
    _require_staff(actor, "publish prices")
    currency = currency_checked(currency)
    effective_from = _aware(effective_from or timezone.now(), "effective_from")
    expected = {(level.value, dist.value) for level in Level for dist in Distribution}
    given = {(str(level), str(dist)) for level, dist in tiers}
    if given != expected:
        raise InvalidInput(
            "a price list needs exactly one amount per level and distribution",
            details={
                "missing": sorted("/".join(k) for k in expected - given),
                "unknown": sorted("/".join(k) for k in given - expected),
            },
        )
    bad = {
        f"{lv}/{di}": amount
        for (lv, di), amount in tiers.items()
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= BIGINT_MAX
    }
    if bad:
        raise InvalidInput(
            "prices are non-negative integers of minor units (cents)", details={"amounts": bad}
        )
    if PriceList.objects.filter(currency=currency, effective_from=effective_from).exists():
        raise Conflict(f"a {currency} price list already starts at {effective_from.isoformat()}")
    price_list = PriceList.objects.create(
        currency=currency, effective_from=effective_from, note=note, created_by=actor
    )
    PriceTier.objects.bulk_create(
        PriceTier(price_list=price_list, level=lv, distribution=di, amount_minor=amount)
        for (lv, di), amount in tiers.items()
    )
    return price_list


def split_policy_publish(
    *,
    actor: AbstractBaseUser,
    direct_bp: int,
    tda_pool_bp: int,
    auxiliary_bp: int,
    platform_bp: int,
    publishing_bp: int = DEFAULT_PUBLISHING_BP,
    auxiliary_modules: Mapping[str, int] | None = None,
    effective_from: datetime | None = None,
    note: str = "",
) -> SplitPolicy:
    """A new fee split, and the division of what each recording earns between its master
    holders and the holders of the works it embodies (`publishing_bp`, default 50/50, the
    master/publishing parity of licensed generators and collective AI licences)."""
    _require_staff(actor, "change the fee split")
    effective_from = _aware(effective_from or timezone.now(), "effective_from")
    try:
        FeeSplit(direct_bp, tda_pool_bp, auxiliary_bp, platform_bp)
    except AllocationError as exc:
        raise InvalidInput(str(exc)) from exc
    if (
        isinstance(publishing_bp, bool)
        or not isinstance(publishing_bp, int)
        or not 0 <= publishing_bp <= 10_000
    ):
        raise InvalidInput(
            f"the publishing side must be 0 to 10000 basis points, got {publishing_bp!r}",
            details={"publishing_bp": publishing_bp},
        )
    modules = dict(DEFAULT_AUXILIARY_MODULES if auxiliary_modules is None else auxiliary_modules)
    unknown = sorted(set(modules) - set(MODULE_KINDS))
    bad = {
        k: v for k, v in modules.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0
    }
    if unknown or bad or sum(modules.values()) != 10_000:
        raise InvalidInput(
            "auxiliary_modules gives each module kind (" + ", ".join(MODULE_KINDS) + ") a "
            "whole number of basis points, summing to 10000",
            details={"unknown": unknown, "invalid": bad, "total": sum(
                v for v in modules.values() if isinstance(v, int)
            )},
        )  # fmt: skip
    if SplitPolicy.objects.filter(effective_from=effective_from).exists():
        raise Conflict(f"a split policy already starts at {effective_from.isoformat()}")
    return SplitPolicy.objects.create(
        effective_from=effective_from,
        direct_bp=direct_bp,
        tda_pool_bp=tda_pool_bp,
        auxiliary_bp=auxiliary_bp,
        platform_bp=platform_bp,
        publishing_bp=publishing_bp,
        auxiliary_modules=modules,
        note=note,
        created_by=actor,
    )
