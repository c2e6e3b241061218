"""Rights holders, their members, and who owns which share of a recording.

Shares are contract data kept by the platform's rights team, so only staff set them.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from catalog.events import ConsentChanged, consent_changed_publish
from catalog.models import (
    CONSENT_BIT_NAMES,
    TOTAL_BASIS_POINTS,
    Recording,
    RightsHolder,
    RightsHolderMembership,
    RightsShare,
)
from catalog.services.consent_masks import consent_masks_refresh
from config.exceptions import Forbidden, InvalidInput


def rights_holder_create(*, name: str, kind: str, ipi: str = "") -> RightsHolder:
    holder = RightsHolder(name=name.strip(), kind=kind, ipi=ipi.strip())
    try:
        holder.full_clean()
    except ValidationError as exc:
        raise InvalidInput("invalid rights holder", details=exc.message_dict) from exc
    holder.save()
    return holder


def rights_holder_add_member(*, holder: RightsHolder, user: AbstractBaseUser) -> None:
    RightsHolderMembership.objects.get_or_create(holder=holder, user=user)


def rights_shares_set(
    *, actor: AbstractBaseUser, recording: Recording, shares: Mapping[RightsHolder, int]
) -> list[RightsShare]:
    """Replace the shares of `recording`. They must be positive and sum to exactly 10,000
    basis points; the database re-checks the sum when the transaction commits."""
    if not getattr(actor, "is_staff", False):
        raise Forbidden("only the platform's rights team (staff) may set rights shares")
    if not shares:
        raise InvalidInput("a recording needs at least one rights share")
    basis_points_check({holder.name: bp for holder, bp in shares.items()}, "share")
    with transaction.atomic():
        Recording.objects.select_for_update().filter(pk=recording.pk).exists()
        RightsShare.objects.filter(recording=recording).delete()
        created = RightsShare.objects.bulk_create(
            RightsShare(recording=recording, holder=holder, basis_points=basis_points)
            for holder, basis_points in shares.items()
        )
        consent_masks_refresh(recording_ids=[recording.pk])  # a new holder has not consented
        consent_changed_publish(ConsentChanged((recording.pk,), revoked=CONSENT_BIT_NAMES))
        return created


def basis_points_check(parts: Mapping[str, object], what: str) -> None:
    """Every part a whole number in [1, 10,000], and all of them summing to exactly 10,000."""
    for name, basis_points in parts.items():
        if (
            isinstance(basis_points, bool)
            or not isinstance(basis_points, int)
            or not 1 <= basis_points <= TOTAL_BASIS_POINTS
        ):
            raise InvalidInput(
                f"{what} of '{name}' must be a whole number of basis points between 1 and "
                f"{TOTAL_BASIS_POINTS}, got {basis_points!r}"
            )
    total = sum(parts.values())  # type: ignore[arg-type]
    if total != TOTAL_BASIS_POINTS:
        raise InvalidInput(
            f"{what}s must sum to exactly {TOTAL_BASIS_POINTS} basis points, got {total}",
            details={"total": total},
        )
