"""Demo rights, consent and accounts on top of the imported demo catalogue.

Every artist is a rights holder (a person) with one member account. A fictional label,
"Open Game Music Collective", co-holds 30% of every recording; the demo rights-holder login
acts for it. Consent is set through the same services the portal uses, in a fixed mix:
full opt-in, training only, inference only, nothing, and recordings where the label opts in
but the artist allows only song-level inference (so unanimity is visible), plus a few
revocations so that history has more than one version. Idempotent: holders that already
have a consent version for a recording are left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from catalog.models import CurrentConsent, Recording, RightsHolder, RightsShare
from catalog.services.consent import consent_grant, consent_revoke
from catalog.services.rights import (
    rights_holder_add_member,
    rights_holder_create,
    rights_shares_set,
)

LABEL_NAME = "Open Game Music Collective"
LABEL_BASIS_POINTS = 3_000
ALL_USES = ["training", "song_inference", "parameter_inference", "audio_inference"]
INFERENCE_USES = ["song_inference", "parameter_inference", "audio_inference"]
ALL_DISTRIBUTIONS = ["private", "non_commercial", "commercial"]


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    role: str


DEMO_ACCOUNTS = (
    DemoAccount("holder", "holder-demo-pass", f"rights holder (member of {LABEL_NAME})"),
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
    """Holders, shares and consent for every demo recording that has no shares yet."""
    users = demo_accounts_create()
    User = get_user_model()
    label = RightsHolder.objects.filter(name=LABEL_NAME).first() or rights_holder_create(
        name=LABEL_NAME, kind=RightsHolder.Kind.ORGANISATION, ipi="00052210040"
    )
    rights_holder_add_member(holder=label, user=users["holder"])

    counts = {"recordings": 0, "consent_versions": 0}
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
    return counts
