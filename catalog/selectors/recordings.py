"""Recordings and their rights holders: lookups by id, who may read a holder or a recording's
audio, and the master and publishing shares, titles and holder names other apps pay or show."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from catalog.models import (
    Recording,
    RecordingWork,
    RightsHolder,
    RightsHolderMembership,
    RightsShare,
    Use,
    WorkShare,
)
from catalog.selectors.consent import recording_permits
from config.exceptions import NotFound


def holder_recordings(*, holder: RightsHolder) -> QuerySet[Recording]:
    """With the reservations each came with (the portal shows them beside its toggles)."""
    return (
        Recording.objects.filter(shares__holder=holder)
        .select_related("artist", "release")
        .prefetch_related("reservations")
        .order_by("artist__name", "title")
    )


def holder_recordings_any_side(*, holder: RightsHolder) -> QuerySet[Recording]:
    """Recordings `holder` has a say in: as a master holder, or as a writer or publisher of a
    work they embody."""
    mine = Q(shares__holder=holder) | Q(work_links__work__shares__holder=holder)
    ids = Recording.objects.filter(mine).values("pk")
    return (
        Recording.objects.filter(pk__in=ids)
        .select_related("artist")
        .order_by("artist__name", "title")
    )


def user_is_member(*, user: AbstractBaseUser, holder: RightsHolder) -> bool:
    return RightsHolderMembership.objects.filter(user_id=user.pk, holder=holder).exists()


def user_holders(*, user: AbstractBaseUser) -> QuerySet[RightsHolder]:
    if getattr(user, "is_staff", False):
        return RightsHolder.objects.all()
    return RightsHolder.objects.filter(rightsholdermembership__user_id=user.pk)


def holder_readable_by(*, user: AbstractBaseUser, holder_id: int) -> RightsHolder:
    """The holder, if `user` may read its consent and reports (members and staff). Anyone
    else is told it does not exist, as for an unknown id, so holder ids are not confirmed."""
    holder = RightsHolder.objects.filter(pk=holder_id).first()
    if holder is None or not (
        getattr(user, "is_staff", False) or user_is_member(user=user, holder=holder)
    ):
        raise NotFound(f"rights holder {holder_id} does not exist")
    return holder


def recording_get(*, recording_id: int) -> Recording:
    recording = Recording.objects.filter(pk=recording_id).select_related("artist").first()
    if recording is None:
        raise NotFound(f"recording {recording_id} does not exist")
    return recording


def holder_recording_get(*, holder: RightsHolder, recording_id: int) -> Recording:
    """A recording in which `holder` has a share."""
    recording = holder_recordings(holder=holder).filter(pk=recording_id).first()
    if recording is None:
        raise NotFound(f"rights holder '{holder.name}' has no recording {recording_id}")
    return recording


def recording_audio_intact(*, recording: Recording) -> bool:
    """Whether the stored audio still has the content hash recorded at import."""
    from catalog.audio.decoding import file_sha256

    try:
        return file_sha256(recording.audio_file.path) == recording.content_sha256
    except OSError:
        return False


def recording_audio_readable_by(*, user: AbstractBaseUser, recording: Recording) -> bool:
    """Audio is an asset: staff and the recording's own holders may always fetch it; anyone
    else only when every holder has opted it in to song-level inference (for previews)."""
    if getattr(user, "is_staff", False):
        return True
    if RightsHolderMembership.objects.filter(
        user_id=user.pk, holder__shares__recording=recording
    ).exists():
        return True
    return recording_permits(recording=recording, use=Use.SONG_INFERENCE)


def recording_rights_shares(*, recording_ids: Iterable[int]) -> dict[int, dict[int, int]]:
    """{recording id: {holder id: basis points}}; a recording without shares maps to {}."""
    ids = list(dict.fromkeys(recording_ids))
    shares: dict[int, dict[int, int]] = {rid: {} for rid in ids}
    rows = RightsShare.objects.filter(recording_id__in=ids).order_by("recording_id", "holder_id")
    for rid, holder_id, bp in rows.values_list("recording_id", "holder_id", "basis_points"):
        shares[rid][holder_id] = bp
    return shares


def recordings_work_shares(
    *, recording_ids: Iterable[int]
) -> dict[int, dict[int, tuple[int, dict[int, int]]]]:
    """{recording id: {work id: (link basis points, {holder id: basis points of the work})}},
    the publishing side of each recording; {} for a recording that embodies no registered work.
    Two queries."""
    ids = list(dict.fromkeys(recording_ids))
    works: dict[int, dict[int, tuple[int, dict[int, int]]]] = {rid: {} for rid in ids}
    links = RecordingWork.objects.filter(recording_id__in=ids).order_by("recording_id", "work_id")
    link_rows = list(links.values_list("recording_id", "work_id", "basis_points"))
    holders: dict[int, dict[int, int]] = {}
    shares = WorkShare.objects.filter(work_id__in={w for _, w, _ in link_rows}).order_by(
        "work_id", "holder_id"
    )
    for work_id, holder_id, bp in shares.values_list("work_id", "holder_id", "basis_points"):
        holders.setdefault(work_id, {})[holder_id] = bp
    for rid, work_id, bp in link_rows:
        works[rid][work_id] = (bp, holders.get(work_id, {}))
    return works


def recordings_existing(*, recording_ids: Iterable[int]) -> set[int]:
    return set(Recording.objects.filter(pk__in=list(recording_ids)).values_list("pk", flat=True))


def recordings_labels(*, recording_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """(title, artist name) of each existing recording, for showing ids to people."""
    rows = Recording.objects.filter(pk__in=list(recording_ids)).values_list(
        "pk", "title", "artist__name"
    )
    return {pk: (title, artist) for pk, title, artist in rows}


def recordings_rights_holders(*, recording_ids: Iterable[int]) -> dict[int, list[tuple[str, int]]]:
    """{recording id: [(holder name, basis points), ...]} largest share first, for showing who
    a generation pays (receipts, provenance)."""
    holders: dict[int, list[tuple[str, int]]] = {rid: [] for rid in recording_ids}
    shares = (
        RightsShare.objects.filter(recording_id__in=list(holders))
        .select_related("holder")
        .order_by("recording_id", "-basis_points", "holder__name")
    )
    for share in shares:
        holders[share.recording_id].append((share.holder.name, share.basis_points))
    return holders
