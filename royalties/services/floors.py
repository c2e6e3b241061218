"""Price floors that holders set: the least a generation using their recording may cost."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from catalog.models import Distribution, Level, Recording, RightsHolder
from catalog.selectors import user_is_member
from config.api import BIGINT_MAX
from config.exceptions import Forbidden, InvalidInput
from royalties import selectors
from royalties.models import PriceFloor
from royalties.services.inputs import currency_checked


def price_floor_set(
    *,
    actor: AbstractBaseUser,
    holder: RightsHolder,
    level: str,
    distribution: str,
    amount_minor: int,
    currency: str | None = None,
    recording: Recording | None = None,
) -> PriceFloor:
    """Set (or, with 0, lift) `holder`'s floor for one recording it holds a share in (master,
    or writer/publisher of a work it embodies), or its default for all its recordings. In
    force from now; earlier floors stay on record."""
    if not (getattr(actor, "is_staff", False) or user_is_member(user=actor, holder=holder)):
        raise Forbidden(f"only members of '{holder.name}' may set its prices")
    if level not in Level.values:
        raise InvalidInput(f"unknown level '{level}'", details={"level": level})
    if distribution not in Distribution.values:
        raise InvalidInput(
            f"unknown distribution '{distribution}'", details={"distribution": distribution}
        )
    currency = currency_checked(currency)
    if (
        isinstance(amount_minor, bool)
        or not isinstance(amount_minor, int)
        or not 0 <= amount_minor <= BIGINT_MAX
    ):
        raise InvalidInput(
            "a floor is a whole, non-negative number of minor units (cents); 0 lifts it",
            details={"amount_minor": amount_minor},
        )
    if recording is not None:
        holders = selectors.recordings_holder_ids(recording_ids=[recording.pk])[recording.pk]
        if holder.pk not in holders:
            raise InvalidInput(
                f"'{holder.name}' holds no share in recording {recording.pk}",
                details={"recording": recording.pk},
            )
    return PriceFloor.objects.create(
        holder=holder,
        recording=recording,
        level=level,
        distribution=distribution,
        currency=currency,
        amount_minor=amount_minor,
        created_by=actor,
        created_at=timezone.now(),
    )
