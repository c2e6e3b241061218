"""Consent changes. Each change appends a new immutable `ConsentVersion`; nothing is updated
or deleted. Only members of a holder may change that holder's consent (staff included)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from catalog.models import (
    ConsentVersion,
    CurrentConsent,
    Distribution,
    Recording,
    RightsHolder,
    RightsShare,
    Use,
)
from catalog.selectors import CONSENT_NAMES, parse_distribution, parse_use, user_is_member
from catalog.services.consent_masks import consent_masks_refresh
from config.exceptions import Forbidden, InvalidInput


def consent_grant(
    *,
    actor: AbstractBaseUser,
    holder: RightsHolder,
    recording: Recording,
    uses: Iterable[str] = (),
    distributions: Iterable[str] = (),
    note: str = "",
) -> ConsentVersion:
    """Opt `recording` in for `uses` and `distributions` on behalf of `holder`."""
    return _consent_change(
        actor=actor,
        holder=holder,
        recording=recording,
        uses=uses,
        distributions=distributions,
        note=note,
        grant=True,
    )


def consent_revoke(
    *,
    actor: AbstractBaseUser,
    holder: RightsHolder,
    recording: Recording,
    uses: Iterable[str] = (),
    distributions: Iterable[str] = (),
    note: str = "",
) -> ConsentVersion:
    """Opt `recording` out of `uses` and `distributions`; the earlier grant stays in history."""
    return _consent_change(
        actor=actor,
        holder=holder,
        recording=recording,
        uses=uses,
        distributions=distributions,
        note=note,
        grant=False,
    )


def _consent_change(
    *,
    actor: AbstractBaseUser,
    holder: RightsHolder,
    recording: Recording,
    uses: Iterable[str],
    distributions: Iterable[str],
    note: str,
    grant: bool,
) -> ConsentVersion:
    names = [parse_use(u).value for u in uses] + [
        parse_distribution(d).value for d in distributions
    ]
    if not names:
        raise InvalidInput("name at least one use or distribution to change")
    if not user_is_member(user=actor, holder=holder):
        raise Forbidden(f"only members of '{holder.name}' may change its consent")

    with transaction.atomic():
        # Locking the recording serialises every change to what it permits (any holder's
        # consent, its shares, new embedding rows), so its consent mask sees them all.
        Recording.objects.select_for_update().filter(pk=recording.pk).exists()
        share = RightsShare.objects.filter(holder=holder, recording=recording)
        if not share.exists():
            raise InvalidInput(
                f"'{holder.name}' holds no share in recording {recording.pk}",
                details={"recording": recording.pk, "holder": holder.pk},
            )
        pointer = (
            CurrentConsent.objects.select_for_update()
            .select_related("version")
            .filter(holder=holder, recording=recording)
            .first()
        )
        previous = pointer.version if pointer else None
        state = {f: (previous.permits(f) if previous else False) for f in CONSENT_NAMES}
        # The first version records every named field: it replaces the implicit opt-out.
        changed = sorted(
            {n for n in names if previous is None or state[n] != grant}, key=CONSENT_NAMES.index
        )
        if not changed:
            return previous  # nothing changes: no new version
        state.update({n: grant for n in changed})
        version = ConsentVersion.objects.create(
            recording=recording,
            holder=holder,
            number=(previous.number + 1) if previous else 1,
            changed_by=actor,
            granted=changed if grant else [],
            revoked=[] if grant else changed,
            note=note[:500],
            **state,
        )
        if pointer is None:
            CurrentConsent.objects.create(recording=recording, holder=holder, version=version)
        else:
            CurrentConsent.objects.filter(pk=pointer.pk).update(version=version)
        consent_masks_refresh(recording_ids=[recording.pk])
    return version


@dataclass(frozen=True)
class ConsentChange:
    """What one recording's consent should become: names to switch on and to switch off."""

    recording: Recording
    grant: list[str]
    revoke: list[str]


def consent_changes_apply(
    *,
    actor: AbstractBaseUser,
    holder: RightsHolder,
    changes: Iterable[ConsentChange],
    note: str = "",
) -> int:
    """Apply several recordings' changes in one transaction (the portal's bulk action): an
    error on any of them leaves all unchanged. Returns how many recordings changed."""
    changed = 0
    with transaction.atomic():
        for change in changes:
            for names, apply in ((change.grant, consent_grant), (change.revoke, consent_revoke)):
                if names:
                    apply(
                        actor=actor,
                        holder=holder,
                        recording=change.recording,
                        uses=[n for n in names if n in Use.values],
                        distributions=[n for n in names if n in Distribution.values],
                        note=note,
                    )
            changed += bool(change.grant or change.revoke)
    return changed
