"""Consent changes. Each change appends a new immutable `ConsentVersion`; nothing is updated
or deleted. Only members of a holder may change that holder's consent (staff included).

A holder consents for a recording it holds a master share in, or for a work it holds a
writer's or publisher's share in; a recording's effective consent needs both sides
(`catalog.selectors.recordings_permitting`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from catalog.events import ConsentChanged, consent_changed_publish
from catalog.models import (
    ConsentVersion,
    CurrentConsent,
    Distribution,
    Recording,
    RightsHolder,
    RightsShare,
    Use,
    Work,
    WorkShare,
)
from catalog.selectors import (
    CONSENT_NAMES,
    consent_current,
    parse_distribution,
    parse_use,
    user_is_member,
)
from catalog.services.consent_masks import consent_masks_refresh
from catalog.services.reservations import reservation_override_guard
from catalog.services.works import work_recordings_lock
from config.exceptions import Forbidden, InvalidInput


def consent_grant(
    *,
    actor: AbstractBaseUser,
    holder: RightsHolder,
    recording: Recording | None = None,
    work: Work | None = None,
    uses: Iterable[str] = (),
    distributions: Iterable[str] = (),
    note: str = "",
    confirm_reservation: bool = False,
) -> ConsentVersion:
    """Opt `recording` (or `work`) in for `uses` and `distributions` on behalf of `holder`.

    Granting training on a recording that came with a reservation of mining rights needs
    `confirm_reservation` (the holder overrides it knowingly; the override is recorded), else
    `ReservationNotConfirmed` and nothing changes (`catalog.services.reservations`)."""
    subject = _Subject.of(recording, work)
    with transaction.atomic():
        previous = consent_current(holder=holder, recording=recording) if recording else None
        version = _consent_change(
            actor=actor,
            holder=holder,
            subject=subject,
            uses=uses,
            distributions=distributions,
            note=note,
            grant=True,
        )
        reservation_override_guard(
            actor=actor,
            holder=holder,
            recording=recording,
            previous=previous,
            version=version,
            confirm=confirm_reservation,
        )
    return version


def consent_revoke(
    *,
    actor: AbstractBaseUser,
    holder: RightsHolder,
    recording: Recording | None = None,
    work: Work | None = None,
    uses: Iterable[str] = (),
    distributions: Iterable[str] = (),
    note: str = "",
) -> ConsentVersion:
    """Opt `recording` (or `work`) out of `uses` and `distributions`; the earlier grant stays
    in history."""
    return _consent_change(
        actor=actor,
        holder=holder,
        subject=_Subject.of(recording, work),
        uses=uses,
        distributions=distributions,
        note=note,
        grant=False,
    )


@dataclass(frozen=True)
class _Subject:
    """What a consent row is about: a recording or a work, never both."""

    recording: Recording | None
    work: Work | None

    @classmethod
    def of(cls, recording: Recording | None, work: Work | None) -> _Subject:
        if (recording is None) == (work is None):
            raise InvalidInput("consent is given for one recording or one work")
        return cls(recording, work)

    @property
    def fields(self) -> dict[str, object]:
        return {"recording": self.recording} if self.recording else {"work": self.work}

    def describe(self) -> str:
        return f"recording {self.recording.pk}" if self.recording else f"work {self.work.pk}"

    def lock_affected_recordings(self) -> list[int]:
        """Lock the recordings whose effective consent this subject decides (in id order, as
        every consent writer does) and return their ids."""
        if self.recording is not None:
            Recording.objects.select_for_update().filter(pk=self.recording.pk).exists()
            return [self.recording.pk]
        return work_recordings_lock(self.work)

    def held_by(self, holder: RightsHolder) -> bool:
        if self.recording is not None:
            return RightsShare.objects.filter(holder=holder, recording=self.recording).exists()
        return WorkShare.objects.filter(holder=holder, work=self.work).exists()


def _consent_change(
    *,
    actor: AbstractBaseUser,
    holder: RightsHolder,
    subject: _Subject,
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
        # Locking the recordings serialises every change to what they permit (any holder's
        # consent, shares, work links, new embedding rows), so their masks see them all.
        affected = subject.lock_affected_recordings()
        if not subject.held_by(holder):
            raise InvalidInput(
                f"'{holder.name}' holds no share in {subject.describe()}",
                details={**{k: v.pk for k, v in subject.fields.items()}, "holder": holder.pk},
            )
        pointer = (
            CurrentConsent.objects.select_for_update()
            .select_related("version")
            .filter(holder=holder, **subject.fields)
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
            **subject.fields,
            holder=holder,
            number=(previous.number + 1) if previous else 1,
            changed_by=actor,
            granted=changed if grant else [],
            revoked=[] if grant else changed,
            note=note[:500],
            **state,
        )
        if pointer is None:
            CurrentConsent.objects.create(**subject.fields, holder=holder, version=version)
        else:
            CurrentConsent.objects.filter(pk=pointer.pk).update(version=version)
        consent_masks_refresh(recording_ids=affected)
        consent_changed_publish(
            ConsentChanged(
                tuple(affected),
                granted=tuple(changed) if grant else (),
                revoked=() if grant else tuple(changed),
            )
        )
    return version


@dataclass(frozen=True)
class ConsentChange:
    """What one recording's (or, with `work` and no recording, one work's) consent should
    become: names to switch on and to switch off."""

    recording: Recording | None
    grant: list[str]
    revoke: list[str]
    work: Work | None = None


def consent_changes_apply(
    *,
    actor: AbstractBaseUser,
    holder: RightsHolder,
    changes: Iterable[ConsentChange],
    note: str = "",
    confirm_reservation: bool = False,
) -> int:
    """Apply several recordings' (or works') changes in one transaction (the portal's bulk
    action): an error on any of them leaves all unchanged. Returns how many changed.
    `confirm_reservation`: the holder confirmed overriding the reservations shown to it."""
    changed = 0
    with transaction.atomic():
        for change in changes:
            for names, apply, extra in (
                (change.grant, consent_grant, {"confirm_reservation": confirm_reservation}),
                (change.revoke, consent_revoke, {}),
            ):
                if names:
                    apply(
                        actor=actor,
                        holder=holder,
                        recording=change.recording,
                        work=change.work,
                        uses=[n for n in names if n in Use.values],
                        distributions=[n for n in names if n in Distribution.values],
                        note=note,
                        **extra,
                    )
            changed += bool(change.grant or change.revoke)
    return changed
