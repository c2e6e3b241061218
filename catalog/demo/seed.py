"""Demo rights, consent and accounts on top of the imported demo catalogue.

Every artist is a rights holder (a person) with one member account. A fictional label,
"Open Game Music Collective", co-holds 30% of every recording; the demo rights-holder login
acts for it. Consent is set through the same services the portal uses, in a fixed mix:
full opt-in, training only, inference only, nothing, and recordings where the label opts in
but the artist allows only song-level inference (so unanimity is visible), plus a few
revocations so that history has more than one version.

Every recording embodies a work of the same title written by its artist (composer, self-
published); one work in ten (the 2nd, 12th, ...) is co-published 50/50 by a fictional
publisher, "Open Game Music Publishing", which the demo rights-holder login also acts for.
The writer's consent for the work mirrors the artist's current consent for the recording and
the publisher grants everything, so the works change no recording's effective consent.
Idempotent: holders that already have a consent version for a recording or work, and
recordings already linked to works, are left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from catalog.models import (
    CurrentConsent,
    Distribution,
    Recording,
    RecordingWork,
    RightsHolder,
    RightsShare,
    Use,
    Work,
    WorkShare,
)
from catalog.services.consent import consent_grant, consent_revoke
from catalog.services.rights import (
    rights_holder_add_member,
    rights_holder_create,
    rights_shares_set,
)
from catalog.services.works import WorkShareSpec, recording_works_set, work_create

LABEL_NAME = "Open Game Music Collective"
LABEL_BASIS_POINTS = 3_000
PUBLISHER_NAME = "Open Game Music Publishing"
PUBLISHER_IPI = "00052210041"
# the 2nd, 12th, 22nd, ... recording's work is 50/50 writer and publisher: those recordings
# have the "full" consent profile, so makers can use them at every level and distribution
CO_PUBLISHED_EVERY, CO_PUBLISHED_AT = 10, 1
ALL_USES = ["training", "song_inference", "parameter_inference", "audio_inference"]
INFERENCE_USES = ["song_inference", "parameter_inference", "audio_inference"]
ALL_DISTRIBUTIONS = ["private", "non_commercial", "commercial"]


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    role: str


DEMO_ACCOUNTS = (
    DemoAccount(
        "holder", "holder-demo-pass", f"rights holder (member of {LABEL_NAME} and {PUBLISHER_NAME})"
    ),
    DemoAccount("maker", "maker-demo-pass", "music maker"),
    DemoAccount("staff", "staff-demo-pass", "staff (admin)"),
)

# Consent profiles, assigned round-robin over recordings in a stable order.
# (label grants, artist grants); each grants is (uses, distributions).
_FULL = (ALL_USES, ALL_DISTRIBUTIONS)
_PROFILES = (
    ("full", _FULL, _FULL),
    ("full", _FULL, _FULL),
    ("full", _FULL, _FULL),
    ("full, commercial revoked by artist", _FULL, _FULL),
    ("training only", (["training"], []), (["training"], [])),
    ("training only", (["training"], []), (["training"], [])),
    (
        "inference only",
        (INFERENCE_USES, ALL_DISTRIBUTIONS),
        (INFERENCE_USES, ["private", "non_commercial"]),
    ),
    ("inference only", (INFERENCE_USES, ALL_DISTRIBUTIONS), (INFERENCE_USES, ALL_DISTRIBUTIONS)),
    ("opted out", None, None),
    (
        "label full, artist song-level only",
        _FULL,
        (["song_inference"], ["private", "non_commercial"]),
    ),
)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:30]


def demo_accounts_create() -> dict[str, object]:
    User = get_user_model()
    users = {}
    for account in DEMO_ACCOUNTS:
        user, created = User.objects.get_or_create(username=account.username)
        if created:
            user.set_password(account.password)
            user.is_staff = user.is_superuser = account.username == "staff"
            user.save()
        users[account.username] = user
    return users


@transaction.atomic
def demo_rights_seed() -> dict[str, int]:
    """Holders, shares, works and consent for every demo recording that lacks them."""
    users = demo_accounts_create()
    User = get_user_model()
    label = RightsHolder.objects.filter(name=LABEL_NAME).first() or rights_holder_create(
        name=LABEL_NAME, kind=RightsHolder.Kind.ORGANISATION, ipi="00052210040"
    )
    rights_holder_add_member(holder=label, user=users["holder"])
    publisher = RightsHolder.objects.filter(name=PUBLISHER_NAME).first() or rights_holder_create(
        name=PUBLISHER_NAME, kind=RightsHolder.Kind.ORGANISATION, ipi=PUBLISHER_IPI
    )
    rights_holder_add_member(holder=publisher, user=users["holder"])

    counts = {"recordings": 0, "works": 0, "consent_versions": 0}
    recordings = Recording.objects.select_related("artist").order_by("content_sha256")
    for index, recording in enumerate(recordings):
        artist_holder = RightsHolder.objects.filter(name=recording.artist.name).first()
        if artist_holder is None:
            artist_holder = rights_holder_create(
                name=recording.artist.name, kind=RightsHolder.Kind.PERSON
            )
        member, created = User.objects.get_or_create(username=f"artist-{_slug(artist_holder.name)}")
        if created:
            member.set_unusable_password()
            member.save()
        rights_holder_add_member(holder=artist_holder, user=member)

        if not RightsShare.objects.filter(recording=recording).exists():
            rights_shares_set(
                actor=users["staff"],
                recording=recording,
                shares={label: LABEL_BASIS_POINTS, artist_holder: 10_000 - LABEL_BASIS_POINTS},
            )
            counts["recordings"] += 1
        name, label_grants, artist_grants = _PROFILES[index % len(_PROFILES)]
        for holder, actor, grants in (
            (label, users["holder"], label_grants),
            (artist_holder, member, artist_grants),
        ):
            if CurrentConsent.objects.filter(recording=recording, holder=holder).exists():
                continue
            if grants is None:
                consent_revoke(
                    actor=actor, holder=holder, recording=recording, uses=ALL_USES,
                    distributions=ALL_DISTRIBUTIONS, note="demo: opted out",
                )  # fmt: skip
                counts["consent_versions"] += 1
                continue
            uses, distributions = grants
            consent_grant(
                actor=actor, holder=holder, recording=recording, uses=uses,
                distributions=distributions, note=f"demo: {name}",
            )  # fmt: skip
            counts["consent_versions"] += 1
            if "revoked" in name and holder == artist_holder:
                consent_revoke(
                    actor=actor, holder=holder, recording=recording,
                    distributions=["commercial"], note="demo: no commercial use after all",
                )  # fmt: skip
                counts["consent_versions"] += 1

        if not RecordingWork.objects.filter(recording=recording).exists():
            co_published = index % CO_PUBLISHED_EVERY == CO_PUBLISHED_AT
            shares = [WorkShareSpec(artist_holder, WorkShare.Role.COMPOSER, 10_000)]
            if co_published:
                shares = [WorkShareSpec(artist_holder, WorkShare.Role.COMPOSER, 5_000),
                          WorkShareSpec(publisher, WorkShare.Role.PUBLISHER, 5_000)]  # fmt: skip
            work = work_create(actor=users["staff"], title=recording.title, shares=shares)
            recording_works_set(actor=users["staff"], recording=recording, works={work: 10_000})
            counts["works"] += 1
        for work in Work.objects.filter(recording_links__recording=recording):
            counts["consent_versions"] += _work_consent_seed(
                work=work,
                recording=recording,
                writer=artist_holder,
                writer_member=member,
                publisher=publisher,
                publisher_member=users["holder"],
            )
    return counts


def _work_consent_seed(
    *,
    work: Work,
    recording: Recording,
    writer: RightsHolder,
    writer_member,
    publisher: RightsHolder,
    publisher_member,
) -> int:
    """The writer consents for the work as the artist does for the recording now; the demo
    publisher grants everything. Returns how many consent versions were written."""
    everything = [*ALL_USES, *ALL_DISTRIBUTIONS]
    master = CurrentConsent.objects.filter(recording=recording, holder=writer).first()
    mirrored = [n for n in everything if master and master.version.permits(n)]
    written = 0
    for share in WorkShare.objects.filter(work=work).select_related("holder"):
        holder = share.holder
        if holder not in (writer, publisher) or (
            CurrentConsent.objects.filter(work=work, holder=holder).exists()
        ):
            continue
        is_writer = holder == writer
        names = mirrored if is_writer else everything
        change = consent_grant if names else consent_revoke
        names = names or everything
        change(
            actor=writer_member if is_writer else publisher_member, holder=holder, work=work,
            uses=[n for n in names if n in Use.values],
            distributions=[n for n in names if n in Distribution.values],
            note="demo: as for the recording" if is_writer else "demo: publisher",
        )  # fmt: skip
        written += 1
    return written
