"""Musical works: who writes and publishes them, and which recordings embody them.

Like recording shares, a work's shares and a recording's links to works are contract data
kept by the platform's rights team, so only staff set them. Both sum to exactly 10,000 basis
points (the database re-checks at commit). Changing either changes what the recordings
concerned permit (their works' holders must consent too), so their consent masks are
recomputed in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from catalog.events import ConsentChanged, consent_changed_publish
from catalog.models import (
    CONSENT_BIT_NAMES,
    Recording,
    RecordingWork,
    RightsHolder,
    Work,
    WorkShare,
    iswc_normalised,
)
from catalog.services.consent_masks import consent_masks_refresh
from catalog.services.rights import basis_points_check
from config.exceptions import Conflict, Forbidden, InvalidInput


@dataclass(frozen=True)
class WorkShareSpec:
    """One writer's or publisher's share of a work."""

    holder: RightsHolder
    role: str
    basis_points: int


def _require_staff(actor: AbstractBaseUser, what: str) -> None:
    if not getattr(actor, "is_staff", False):
        raise Forbidden(f"only the platform's rights team (staff) may {what}")


def iswc_checked(value: str | None) -> str | None:
    """The normalised ISWC, None when empty; a clear 400 when the format or check digit is off."""
    if value is None or not str(value).strip():
        return None
    try:
        return iswc_normalised(value)
    except ValidationError as exc:
        raise InvalidInput(exc.messages[0], details={"iswc": str(value)}) from exc


def work_shares_check(shares: list[WorkShareSpec]) -> None:
    """Roles, publishers' IPI and the sum; holders may be unsaved (the importer checks a
    file's works before it creates their holders), so they are told apart by name."""
    if not shares:
        raise InvalidInput("a work needs at least one writer or publisher share")
    holders = [spec.holder.name for spec in shares]
    if len(set(holders)) != len(holders):
        raise InvalidInput("a holder appears twice among the work's shares")
    roles = WorkShare.Role.values
    for spec in shares:
        if spec.role not in roles:
            raise InvalidInput(
                f"role of '{spec.holder.name}' must be one of {', '.join(roles)}, got {spec.role!r}"
            )
        if spec.role == WorkShare.Role.PUBLISHER and not spec.holder.ipi:
            raise InvalidInput(
                f"publisher '{spec.holder.name}' has no IPI name number; societies match "
                "publishers' shares by it",
                details={"holder": spec.holder.pk},
            )
    basis_points_check({spec.holder.name: spec.basis_points for spec in shares}, "work share")


def work_create(
    *, actor: AbstractBaseUser, title: str, shares: list[WorkShareSpec], iswc: str | None = None
) -> Work:
    """A new work with its writers' and publishers' shares."""
    _require_staff(actor, "register works")
    title = (title or "").strip()
    if not title:
        raise InvalidInput("a work needs a title")
    iswc = iswc_checked(iswc)
    work_shares_check(shares)
    if iswc and Work.objects.filter(iswc=iswc).exists():
        raise Conflict(f"a work with ISWC {iswc} is already registered", details={"iswc": iswc})
    try:
        with transaction.atomic():
            work = Work.objects.create(title=title[:255], iswc=iswc)
            WorkShare.objects.bulk_create(
                WorkShare(work=work, holder=s.holder, role=s.role, basis_points=s.basis_points)
                for s in shares
            )
    except IntegrityError as exc:  # the same ISWC registered concurrently
        raise Conflict(f"a work with ISWC {iswc} is already registered") from exc
    return work


def work_shares_set(
    *, actor: AbstractBaseUser, work: Work, shares: list[WorkShareSpec]
) -> list[WorkShare]:
    """Replace a work's shares; a new holder has not consented yet, so the recordings that
    embody the work lose what they permitted until it does."""
    _require_staff(actor, "set work shares")
    work_shares_check(shares)
    with transaction.atomic():
        affected = work_recordings_lock(work)
        WorkShare.objects.filter(work=work).delete()
        created = WorkShare.objects.bulk_create(
            WorkShare(work=work, holder=s.holder, role=s.role, basis_points=s.basis_points)
            for s in shares
        )
        consent_masks_refresh(recording_ids=affected)
        consent_changed_publish(ConsentChanged(tuple(affected), revoked=CONSENT_BIT_NAMES))
    return created


def recording_works_set(
    *, actor: AbstractBaseUser, recording: Recording, works: Mapping[Work, int]
) -> list[RecordingWork]:
    """Replace the works a recording embodies, with each work's part of its publishing side in
    basis points (one work: 10,000; a medley: several summing to 10,000; none: {})."""
    _require_staff(actor, "link recordings to works")
    if works:
        basis_points_check({w.title: bp for w, bp in works.items()}, "work link")
    with transaction.atomic():
        Recording.objects.select_for_update().filter(pk=recording.pk).exists()
        RecordingWork.objects.filter(recording=recording).delete()
        created = RecordingWork.objects.bulk_create(
            RecordingWork(recording=recording, work=work, basis_points=bp)
            for work, bp in works.items()
        )
        consent_masks_refresh(recording_ids=[recording.pk])  # its works' holders must agree
        consent_changed_publish(ConsentChanged((recording.pk,), revoked=CONSENT_BIT_NAMES))
    return created


def work_recordings_lock(work: Work) -> list[int]:
    """Lock the recordings embodying `work` (in id order, as every consent writer locks
    recordings), then the work; returns their ids."""
    ids = list(
        Recording.objects.select_for_update()
        .filter(work_links__work=work)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    Work.objects.select_for_update().filter(pk=work.pk).exists()
    return ids
