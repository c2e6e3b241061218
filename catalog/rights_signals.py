"""Reads behind the machine-readable consent signals (`catalog.consent_signals` maps them):
recordings' reservations, their effective consent as CAWG training-and-data-mining entries,
and the rules of ``/.well-known/tdmrep.json``."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from catalog import consent_signals
from catalog.models import (
    ConsentReservation,
    ConsentReservationOverride,
    Distribution,
    Recording,
    Use,
)
from catalog.selectors import EffectiveConsent, recordings_consent_state, recordings_permitting

AUDIO_PATH = "/api/catalogue/recordings/{id}/audio/"  # the studio's preview URL
TRAINING_MINING_PATH = "/api/catalogue/recordings/{id}/training-mining/"
AUDIO_PATTERN = "/api/catalogue/recordings/*/audio/"


def recordings_reservations(*, recording_ids: Iterable[int]) -> dict[int, list[ConsentReservation]]:
    """{recording id: its reservations} ({} entries for recordings without any)."""
    found: dict[int, list[ConsentReservation]] = {rid: [] for rid in recording_ids}
    for reservation in ConsentReservation.objects.filter(recording_id__in=list(found)):
        found[reservation.recording_id].append(reservation)
    return found


def recording_reservation_overrides(*, recording: Recording) -> list[ConsentReservationOverride]:
    return list(
        ConsentReservationOverride.objects.filter(recording=recording)
        .select_related("holder", "confirmed_by", "version")
        .order_by("created_at", "pk")
    )


def recordings_effective_consent(*, recording_ids: Iterable[int]) -> dict[int, EffectiveConsent]:
    """`recording_effective_consent` for many recordings in four queries: unanimous over
    every master holder and every writer and publisher of the works each embodies."""
    effective = {}
    for rid, holders in recordings_consent_state(recording_ids=recording_ids).items():
        has_master = any(h.work_id is None for h in holders)
        versions = [h.version for h in holders]

        def unanimous(name: str, versions=versions, has_master=has_master) -> bool:
            return has_master and all(v is not None and v.permits(name) for v in versions)

        effective[rid] = EffectiveConsent(
            uses={use: unanimous(use) for use in Use.values},
            distributions={d: unanimous(d) for d in Distribution.values},
        )
    return effective


def recordings_training_mining(*, recording_ids: Iterable[int]) -> dict[int, dict]:
    """{recording id: its CAWG entries} from today's effective consent."""
    return {
        rid: consent_signals.recording_entries(consent.uses, consent.distributions)
        for rid, consent in recordings_effective_consent(recording_ids=recording_ids).items()
    }


def tdmrep_rules(*, policy_url: Callable[[str], str]) -> list[dict]:
    """The ``tdmrep.json`` rules for every recording's audio URL, from consent (two queries);
    `policy_url` makes a path absolute."""
    trainable = set(recordings_permitting(use=Use.TRAINING).values_list("pk", flat=True))
    ids = Recording.objects.order_by("pk").values_list("pk", flat=True)
    return consent_signals.tdmrep_rules(
        (
            consent_signals.TdmLocation(
                AUDIO_PATH.format(id=rid),
                rid in trainable,
                policy_url(TRAINING_MINING_PATH.format(id=rid)),
            )
            for rid in ids.iterator(chunk_size=2000)
        ),
        fallback=AUDIO_PATTERN,
    )
