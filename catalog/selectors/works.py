"""Works (compositions): with their writers' and publishers' shares and the recordings that
embody them, and what a work's holders agree on."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Prefetch, QuerySet

from catalog.models import (
    CurrentConsent,
    Distribution,
    RecordingWork,
    RightsHolder,
    Use,
    Work,
    WorkShare,
)
from catalog.selectors.consent import EffectiveConsent
from config.exceptions import NotFound


def works_all() -> QuerySet[Work]:
    """Works with their shares (largest first) and the recordings embodying them."""
    return Work.objects.prefetch_related(
        Prefetch(
            "shares",
            queryset=WorkShare.objects.select_related("holder").order_by(
                "-basis_points", "holder__name"
            ),
        ),
        Prefetch(
            "recording_links",
            queryset=RecordingWork.objects.select_related("recording__artist").order_by(
                "recording__title", "recording_id"
            ),
        ),
    ).order_by("title", "pk")


def work_get(*, work_id: int) -> Work:
    work = works_all().filter(pk=work_id).first()
    if work is None:
        raise NotFound(f"work {work_id} does not exist")
    return work


def holder_works(*, holder: RightsHolder) -> QuerySet[Work]:
    """Works in which `holder` has a writer's or publisher's share."""
    return works_all().filter(shares__holder=holder)


def holder_work_get(*, holder: RightsHolder, work_id: int) -> Work:
    work = holder_works(holder=holder).filter(pk=work_id).first()
    if work is None:
        raise NotFound(f"rights holder '{holder.name}' has no work {work_id}")
    return work


def holder_ids_with_works(*, holder_ids: Iterable[int]) -> set[int]:
    return set(
        WorkShare.objects.filter(holder_id__in=list(holder_ids)).values_list("holder_id", flat=True)
    )


def works_by_ids(*, work_ids: Iterable[int]) -> dict[int, Work]:
    return Work.objects.in_bulk(list(work_ids))


def holders_by_ids(*, holder_ids: Iterable[int]) -> dict[int, RightsHolder]:
    return RightsHolder.objects.in_bulk(list(holder_ids))


def recordings_works(*, recording_ids: Iterable[int]) -> dict[int, list[RecordingWork]]:
    """{recording id: its links to works (with the work), largest part first}."""
    links: dict[int, list[RecordingWork]] = {rid: [] for rid in recording_ids}
    rows = (
        RecordingWork.objects.filter(recording_id__in=list(links))
        .select_related("work")
        .order_by("recording_id", "-basis_points", "work__title")
    )
    for link in rows:
        links[link.recording_id].append(link)
    return links


def work_effective_consent(*, work: Work) -> EffectiveConsent:
    """What every writer and publisher of `work` agrees on (the work's side only: a recording
    embodying it needs its master holders too)."""
    holder_ids = list(WorkShare.objects.filter(work=work).values_list("holder_id", flat=True))
    versions = {
        c.holder_id: c.version
        for c in CurrentConsent.objects.filter(work=work).select_related("version")
    }

    def unanimous(name: str) -> bool:
        return bool(holder_ids) and all(
            versions.get(h) is not None and versions[h].permits(name) for h in holder_ids
        )

    return EffectiveConsent(
        uses={use: unanimous(use) for use in Use.values},
        distributions={d: unanimous(d) for d in Distribution.values},
    )
