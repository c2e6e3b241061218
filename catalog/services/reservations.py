"""Reservations of text-and-data-mining rights that come with a recording, and the holders'
confirmed overrides of them.

A reservation is recorded when its recording is imported (`reservations_record`, inside the
import's transaction), so it predates every consent version for the recording. From then on
`consent_grant` creates a version granting training for the recording only with
``confirm_reservation``; the confirmation is kept as a `ConsentReservationOverride`. So while a
recording is reserved, training is effectively granted (every master holder grants it) only if
every one of those holders confirmed overriding the reservation: it cannot be overridden
silently, by a bulk change or an API call that did not say so.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser

from catalog.consent_signals import Reservation
from catalog.models import (
    ConsentReservation,
    ConsentReservationOverride,
    ConsentVersion,
    Recording,
    RightsHolder,
    Use,
)
from config.exceptions import Conflict


class ReservationNotConfirmed(Conflict):
    """Training was to be granted on a reserved recording without confirming the override."""

    code = "reservation_not_confirmed"


def reservations_record(
    *, recording: Recording, reservations: Iterable[Reservation]
) -> list[ConsentReservation]:
    """Record the reservations a newly imported recording came with (one per source)."""
    rows = [
        ConsentReservation(
            recording=recording, source=r.source, value=r.value[:255], policy=r.policy[:500]
        )
        for r in {r.source: r for r in reservations}.values()
    ]
    return ConsentReservation.objects.bulk_create(rows)


def reservation_describe(reservations: Iterable[ConsentReservation]) -> str:
    """'IPTC Data Mining (...) in the file's XMP: http://.../DMI-PROHIBITED; ...' for messages."""
    return "; ".join(f"{r.get_source_display()}: {r.value}" for r in reservations)


def reservation_override_guard(
    *,
    actor: AbstractBaseUser,
    holder: RightsHolder,
    recording: Recording | None,
    previous: ConsentVersion | None,
    version: ConsentVersion,
    confirm: bool,
) -> ConsentReservationOverride | None:
    """After `version` was written in the caller's transaction: if it newly grants training on
    a reserved recording, record the holder's confirmed override, or raise (the caller's
    transaction then rolls the version back, so nothing changes)."""
    if recording is None or version == previous or Use.TRAINING not in version.granted:
        return None
    reservations = list(ConsentReservation.objects.filter(recording=recording))
    if not reservations:
        return None
    already = ConsentReservationOverride.objects.filter(version=version).first()
    if already is not None:  # a concurrent call returned the same confirmed version
        return already
    if not confirm:
        raise ReservationNotConfirmed(
            f"recording {recording.pk} ('{recording.title}') came with a reservation of "
            f"text-and-data-mining rights ({reservation_describe(reservations)}); training "
            "stays not granted unless you confirm that you override it "
            "(confirm_reservation: true)",
            details={
                "recording": recording.pk,
                "confirm_reservation": "required to grant training",
                "reservations": [
                    {"source": r.source, "value": r.value, "policy": r.policy} for r in reservations
                ],
            },
        )
    return ConsentReservationOverride.objects.create(
        recording=recording, holder=holder, version=version, confirmed_by=actor
    )
