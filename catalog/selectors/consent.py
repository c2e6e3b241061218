"""Effective consent: which recordings every holder lets a use (and a distribution) through,
as one SQL query or per recording, and each holder's consent versions and current pointers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet

from catalog.models import (
    SEARCH_INDEX_DISTRIBUTIONS,
    SEARCH_INDEX_USES,
    ConsentVersion,
    CurrentConsent,
    Distribution,
    Recording,
    RecordingWork,
    RightsHolder,
    RightsShare,
    Use,
    Work,
    WorkShare,
    consent_bits,
    consent_masks_with,
)
from config.exceptions import InvalidInput


def parse_use(value: str) -> Use:
    try:
        return Use(value)
    except ValueError:
        raise InvalidInput(
            f"unknown use '{value}'; expected one of: {', '.join(Use.values)}",
            details={"use": value},
        ) from None


def parse_distribution(value: str) -> Distribution:
    try:
        return Distribution(value)
    except ValueError:
        raise InvalidInput(
            f"unknown distribution '{value}'; expected one of: {', '.join(Distribution.values)}",
            details={"distribution": value},
        ) from None


def recordings_permitting(
    *,
    use: Use | str,
    distribution: Distribution | str | None = None,
    queryset: QuerySet[Recording] | None = None,
) -> QuerySet[Recording]:
    """Recordings whose effective consent permits `use` (and `distribution`), as one SQL query
    that other querysets (e.g. vector search) can be built on."""
    use = parse_use(use)
    required = {f"version__{use.value}": True}
    if distribution is not None:
        required[f"version__{parse_distribution(distribution).value}"] = True
    granting_holder = CurrentConsent.objects.filter(
        recording=OuterRef("recording"), holder=OuterRef("holder"), **required
    )
    share_not_granting = RightsShare.objects.filter(recording=OuterRef("pk")).exclude(
        Exists(granting_holder)
    )
    granting_work_holder = CurrentConsent.objects.filter(
        work=OuterRef("work"), holder=OuterRef("holder"), **required
    )
    work_share_not_granting = WorkShare.objects.filter(
        work__recording_links__recording=OuterRef("pk")
    ).exclude(Exists(granting_work_holder))
    has_shares = RightsShare.objects.filter(recording=OuterRef("pk"))
    base = queryset if queryset is not None else Recording.objects.all()
    return (
        base.filter(Exists(has_shares))
        .exclude(Exists(share_not_granting))
        .exclude(Exists(work_share_not_granting))
    )


@dataclass(frozen=True)
class ConsentRequirement:
    """What a search asks of each recording's effective consent: a use, and optionally a
    distribution. `mask` is the bits a recording's embedding rows must all carry; `recordings`
    is the same rule as one SQL query over the consent tables."""

    use: Use
    distribution: Distribution | None = None

    @property
    def mask(self) -> int:
        names = [self.use.value] + ([self.distribution.value] if self.distribution else [])
        return consent_bits(names)

    @property
    def masks(self) -> list[int]:
        return consent_masks_with(self.mask)

    @property
    def has_search_index(self) -> bool:
        """Whether a partial vector index holds exactly the windows this permits."""
        return self.use in SEARCH_INDEX_USES and self.distribution in SEARCH_INDEX_DISTRIBUTIONS

    def recordings(self) -> QuerySet[Recording]:
        return recordings_permitting(use=self.use, distribution=self.distribution)


def consent_requirement(
    *, use: Use | str, distribution: Distribution | str | None = None
) -> ConsentRequirement:
    return ConsentRequirement(
        use=parse_use(use),
        distribution=parse_distribution(distribution) if distribution is not None else None,
    )


def recording_permits(
    *, recording: Recording, use: Use | str, distribution: Distribution | str | None = None
) -> bool:
    return recordings_permitting(
        use=use, distribution=distribution, queryset=Recording.objects.filter(pk=recording.pk)
    ).exists()


@dataclass(frozen=True)
class EffectiveConsent:
    """What every holder of a recording agrees on. Unanimity over a conjunction splits, so
    a use at a distribution is permitted iff both `uses[use]` and `distributions[d]` are."""

    uses: dict[str, bool]
    distributions: dict[str, bool]

    def permits(self, use: str, distribution: str | None = None) -> bool:
        allowed = self.uses[parse_use(use).value]
        if distribution is not None:
            allowed = allowed and self.distributions[parse_distribution(distribution).value]
        return allowed


def recording_effective_consent(*, recording: Recording) -> EffectiveConsent:
    holders = recordings_consent_state(recording_ids=[recording.pk])[recording.pk]
    has_master = any(h.work_id is None for h in holders)
    versions = [h.version for h in holders]

    def unanimous(name: str) -> bool:
        return has_master and all(v is not None and v.permits(name) for v in versions)

    return EffectiveConsent(
        uses={use: unanimous(use) for use in Use.values},
        distributions={d: unanimous(d) for d in Distribution.values},
    )


def _consent_subject(recording: Recording | None, work: Work | None) -> dict[str, object]:
    """The filter for consent rows about one recording or one work."""
    if (recording is None) == (work is None):
        raise InvalidInput("consent is about one recording or one work")
    return {"recording": recording} if recording is not None else {"work": work}


def consent_current(
    *, holder: RightsHolder, recording: Recording | None = None, work: Work | None = None
) -> ConsentVersion | None:
    pointer = (
        CurrentConsent.objects.filter(holder=holder, **_consent_subject(recording, work))
        .select_related("version")
        .first()
    )
    return pointer.version if pointer else None


def consent_history(
    *, holder: RightsHolder, recording: Recording | None = None, work: Work | None = None
) -> QuerySet[ConsentVersion]:
    return (
        ConsentVersion.objects.filter(holder=holder, **_consent_subject(recording, work))
        .select_related("changed_by")
        .order_by("-number")
    )


def holder_current_consents(*, holder: RightsHolder) -> dict[int, ConsentVersion]:
    """Latest consent version of `holder` per recording id."""
    return {
        c.recording_id: c.version
        for c in CurrentConsent.objects.filter(
            holder=holder, recording__isnull=False
        ).select_related("version", "version__changed_by")
    }


def holder_current_work_consents(*, holder: RightsHolder) -> dict[int, ConsentVersion]:
    """Latest consent version of `holder` per work id."""
    return {
        c.work_id: c.version
        for c in CurrentConsent.objects.filter(holder=holder, work__isnull=False).select_related(
            "version", "version__changed_by"
        )
    }


@dataclass(frozen=True)
class HolderConsent:
    """One holder's say on a recording: its latest consent version, or None (opted out).
    A writer or publisher of a work the recording embodies speaks through its consent for
    that work (`work_id` set)."""

    holder_id: int
    holder_name: str
    version: ConsentVersion | None
    work_id: int | None = None
    work_title: str = ""

    @property
    def label(self) -> str:
        """'Label X' for a master holder, "Publisher Y (work 'Z')" for a work's holder."""
        if self.work_id is None:
            return self.holder_name
        return f"{self.holder_name} (work '{self.work_title}')"


def recordings_consent_state(*, recording_ids: Iterable[int]) -> dict[int, list[HolderConsent]]:
    """{recording id: the latest consent of every master holder, then of every holder of each
    work it embodies} in four queries, for verification, which must say which holder withholds
    what and record the versions it relied on."""
    ids = list(dict.fromkeys(recording_ids))
    state: dict[int, list[HolderConsent]] = {rid: [] for rid in ids}
    shares = (
        RightsShare.objects.filter(recording_id__in=ids)
        .select_related("holder")
        .order_by("recording_id", "holder_id")
    )
    links = list(
        RecordingWork.objects.filter(recording_id__in=ids)
        .select_related("work")
        .order_by("recording_id", "work_id")
    )
    work_ids = {link.work_id for link in links}
    current = {
        (c.recording_id, c.work_id, c.holder_id): c.version
        for c in CurrentConsent.objects.filter(
            Q(recording_id__in=ids) | Q(work_id__in=work_ids)
        ).select_related("version")
    }
    for share in shares:
        state[share.recording_id].append(
            HolderConsent(
                share.holder_id,
                share.holder.name,
                current.get((share.recording_id, None, share.holder_id)),
            )
        )
    work_shares: dict[int, list[WorkShare]] = {}
    for share in WorkShare.objects.filter(work_id__in=work_ids).select_related("holder"):
        work_shares.setdefault(share.work_id, []).append(share)
    for link in links:
        for share in sorted(work_shares.get(link.work_id, []), key=lambda s: s.holder_id):
            state[link.recording_id].append(
                HolderConsent(
                    share.holder_id,
                    share.holder.name,
                    current.get((None, link.work_id, share.holder_id)),
                    work_id=link.work_id,
                    work_title=link.work.title,
                )
            )
    return state
