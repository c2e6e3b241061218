"""Reads of the catalogue, rights and consent. Writes live in `catalog.services`.

Effective consent is unanimous on both sides of a song: a recording permits a use (and a
distribution) only when it has master rights shares, every holder with a master share has
granted that use (and distribution) in its latest consent version for the recording, and
every writer and publisher with a share in a work the recording embodies has granted it in
its latest consent version for that work. No shares, or no consent version yet, means opted
out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from catalog.models import (
    CONSENT_BIT_NAMES,
    SEARCH_INDEX_DISTRIBUTIONS,
    SEARCH_INDEX_USES,
    ConsentVersion,
    CurrentConsent,
    Distribution,
    Recording,
    RecordingWork,
    RightsHolder,
    RightsHolderMembership,
    RightsShare,
    Use,
    Work,
    WorkShare,
    consent_bits,
    consent_masks_with,
)
from config.exceptions import InvalidInput, NotFound


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


# --- Works -----------------------------------------------------------------------------------


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


# --- The rights-holder portal ---------------------------------------------------------------

CONSENT_NAMES: tuple[str, ...] = CONSENT_BIT_NAMES

# One line per use and distribution for the portal's toggles (seed 004, Tables 1 and 2).
CONSENT_EXPLANATIONS: dict[str, str] = {
    Use.TRAINING: "The platform's generative model may learn from this recording; "
    "training-time attribution then pays you for outputs it shaped.",
    Use.SONG_INFERENCE: "Music makers may pick the whole song as a reference that a new "
    "generation is inspired by.",
    Use.PARAMETER_INFERENCE: "Music makers may take single aspects of it (timbre, melody, "
    "instrument, mood...) as a reference.",
    Use.AUDIO_INFERENCE: "Its audio, or a segment of it, may be applied to a maker's own track "
    "(e.g. amp matching, style transfer on a solo).",
    Distribution.PRIVATE: "Outputs that used it may be saved for the maker's private use.",
    Distribution.NON_COMMERCIAL: "Outputs that used it may be shared publicly without "
    "earning money.",
    Distribution.COMMERCIAL: "Outputs that used it may be sold, monetised or licensed.",
}

# What revoking means for people already relying on it, shown before a revocation.
REVOCATION_CONSEQUENCES: dict[str, str] = {
    Use.TRAINING: "Model versions trained on this recording are flagged as trained on withdrawn "
    "consent; the platform stops serving them until a model trained without it is active.",
    Use.SONG_INFERENCE: "Music makers can no longer pick it as a song-level reference.",
    Use.PARAMETER_INFERENCE: "Music makers can no longer take single aspects of it as a reference.",
    Use.AUDIO_INFERENCE: "Music makers can no longer apply its audio or segments of it to "
    "their tracks.",
    Distribution.PRIVATE: "New generations that use it can no longer be saved for private use.",
    Distribution.NON_COMMERCIAL: "New generations that use it can no longer be shared "
    "non-commercially.",
    Distribution.COMMERCIAL: "New generations that use it can no longer be distributed "
    "commercially.",
}


def consent_label(name: str) -> str:
    """The product's name of a use or distribution ('song_inference' -> 'Song-level inference')."""
    if name in Use.values:
        return Use(name).label
    return parse_distribution(name).label


def parse_consent_names(values: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split use and distribution names (as sent by a form) into (uses, distributions),
    refusing unknown names; order and duplicates are normalised."""
    names = set(values)
    unknown = sorted(names - set(CONSENT_NAMES))
    if unknown:
        raise InvalidInput(
            f"unknown use or distribution: {', '.join(unknown)}; "
            f"expected some of: {', '.join(CONSENT_NAMES)}",
            details={"names": unknown},
        )
    return (
        [n for n in Use.values if n in names],
        [n for n in Distribution.values if n in names],
    )


def basis_points_percent(basis_points: int) -> str:
    """7000 -> '70', 3333 -> '33.33': shares read as percentages, exactly."""
    whole, frac = divmod(basis_points, 100)
    return f"{whole}" if frac == 0 else f"{whole}.{frac:02d}".rstrip("0")


@dataclass(frozen=True)
class CoHolderShare:
    holder_id: int
    name: str
    basis_points: int
    percent: str
    is_self: bool
    version: ConsentVersion | None
    role: str = ""  # a work's writer or publisher: WorkShare.Role

    @property
    def role_label(self) -> str:
        return WorkShare.Role(self.role).label if self.role else ""


@dataclass(frozen=True)
class ConsentToggle:
    """One use or distribution of one recording as its holder sees it: its own say, whether
    it is effective (every co-holder agrees), and who it is waiting on."""

    name: str
    label: str
    explanation: str
    kind: str  # "use" | "distribution"
    mine: bool
    effective: bool
    waiting_on: list[str]


class _ToggleGroups:
    """What the portal shows of one recording's or one work's toggles."""

    toggles: list[ConsentToggle]

    @property
    def uses(self) -> list[ConsentToggle]:
        return [t for t in self.toggles if t.kind == "use"]

    @property
    def distributions(self) -> list[ConsentToggle]:
        return [t for t in self.toggles if t.kind == "distribution"]

    @property
    def waiting(self) -> list[ConsentToggle]:
        """What this holder opts in to that is not effective yet."""
        return [t for t in self.toggles if t.mine and not t.effective]

    @property
    def effective(self) -> list[ConsentToggle]:
        return [t for t in self.toggles if t.effective]

    @property
    def blocked_by_distribution(self) -> bool:
        """Some use is agreed but no distribution is: verification checks both, so makers
        still cannot use the recording for anything."""
        return any(t.effective for t in self.uses) and not any(
            t.effective for t in self.distributions
        )

    @property
    def waiting_by_holder(self) -> list[tuple[str, list[str]]]:
        """[(co-holder name, labels of what this holder opts in to and it does not)]."""
        by_holder: dict[str, list[str]] = {}
        for toggle in self.waiting:
            for name in toggle.waiting_on:
                by_holder.setdefault(name, []).append(toggle.label)
        return list(by_holder.items())


@dataclass(frozen=True)
class RecordingConsentOverview(_ToggleGroups):
    recording: Recording
    holders: list[CoHolderShare]
    version: ConsentVersion | None
    toggles: list[ConsentToggle]
    # writers and publishers of the works it embodies: their consent for the work counts too
    work_holders: list[HolderConsent] = field(default_factory=list)
    # its removal from the served generator after a training revocation (catalog/providers.py)
    removal: dict | None = None

    @property
    def toggle_prefix(self) -> str:
        return f"c-{self.recording.pk}"

    @property
    def works(self) -> list[tuple[str, list[str]]]:
        """[(work title, names of its writers and publishers)] of the works it embodies."""
        by_work: dict[int, tuple[str, list[str]]] = {}
        for h in self.work_holders:
            by_work.setdefault(h.work_id, (h.work_title, []))[1].append(h.holder_name)
        return list(by_work.values())


@dataclass(frozen=True)
class WorkConsentOverview(_ToggleGroups):
    """One work as a holder of it sees it: co-writers and publishers with roles and shares,
    its own toggles, whether all of the work's holders agree, and the recordings embodying
    it (which also need their master holders)."""

    work: Work
    holders: list[CoHolderShare]
    version: ConsentVersion | None
    toggles: list[ConsentToggle]
    recordings: list[RecordingWork]

    @property
    def toggle_prefix(self) -> str:
        return f"w-{self.work.pk}"


def holder_consent_overview(
    *, holder: RightsHolder, recordings: Iterable[Recording]
) -> list[RecordingConsentOverview]:
    """Per recording: co-holders with shares and their latest consent, this holder's toggles
    and whether each is effective, in three queries for any number of recordings."""
    recordings = list(recordings)
    ids = [r.pk for r in recordings]
    current = {
        (c.recording_id, c.holder_id): c.version
        for c in CurrentConsent.objects.filter(recording_id__in=ids).select_related(
            "version", "version__changed_by"
        )
    }
    shares: dict[int, list[CoHolderShare]] = {rid: [] for rid in ids}
    rows = (
        RightsShare.objects.filter(recording_id__in=ids)
        .select_related("holder")
        .order_by("recording_id", "-basis_points", "holder__name")
    )
    for share in rows:
        shares[share.recording_id].append(
            CoHolderShare(
                holder_id=share.holder_id,
                name=share.holder.name,
                basis_points=share.basis_points,
                percent=basis_points_percent(share.basis_points),
                is_self=share.holder_id == holder.pk,
                version=current.get((share.recording_id, share.holder_id)),
            )
        )
    work_side = {
        rid: [h for h in state if h.work_id is not None]
        for rid, state in recordings_consent_state(recording_ids=ids).items()
    }
    overview = []
    for recording in recordings:
        holders = shares[recording.pk]
        mine = current.get((recording.pk, holder.pk))
        toggles = []
        for name in CONSENT_NAMES:
            withholding = [h for h in holders if not (h.version and h.version.permits(name))]
            work_withholding = [
                h for h in work_side[recording.pk] if not (h.version and h.version.permits(name))
            ]
            toggles.append(
                ConsentToggle(
                    name=name,
                    label=consent_label(name),
                    explanation=CONSENT_EXPLANATIONS[name],
                    kind="use" if name in Use.values else "distribution",
                    mine=bool(mine and mine.permits(name)),
                    effective=bool(holders) and not withholding and not work_withholding,
                    waiting_on=[h.name for h in withholding if not h.is_self]
                    + [h.label for h in work_withholding],
                )
            )
        overview.append(
            RecordingConsentOverview(recording, holders, mine, toggles, work_side[recording.pk])
        )
    return overview


def _toggles(holders: list[CoHolderShare], mine: ConsentVersion | None) -> list[ConsentToggle]:
    """This holder's say and whether all `holders` agree, per use and distribution."""
    toggles = []
    for name in CONSENT_NAMES:
        withholding = [h for h in holders if not (h.version and h.version.permits(name))]
        toggles.append(
            ConsentToggle(
                name=name,
                label=consent_label(name),
                explanation=CONSENT_EXPLANATIONS[name],
                kind="use" if name in Use.values else "distribution",
                mine=bool(mine and mine.permits(name)),
                effective=bool(holders) and not withholding,
                waiting_on=[h.name for h in withholding if not h.is_self],
            )
        )
    return toggles


def holder_work_consent_overview(
    *, holder: RightsHolder, works: Iterable[Work]
) -> list[WorkConsentOverview]:
    """Per work (from `works_all`, so shares and recordings are prefetched): its writers and
    publishers with their latest consent for it, and this holder's toggles."""
    works = list(works)
    current = {
        (c.work_id, c.holder_id): c.version
        for c in CurrentConsent.objects.filter(work_id__in=[w.pk for w in works]).select_related(
            "version", "version__changed_by"
        )
    }
    overview = []
    for work in works:
        holders = [
            CoHolderShare(
                holder_id=share.holder_id,
                name=share.holder.name,
                basis_points=share.basis_points,
                percent=basis_points_percent(share.basis_points),
                is_self=share.holder_id == holder.pk,
                version=current.get((work.pk, share.holder_id)),
                role=share.role,
            )
            for share in work.shares.all()
        ]
        mine = current.get((work.pk, holder.pk))
        overview.append(
            WorkConsentOverview(
                work, holders, mine, _toggles(holders, mine), list(work.recording_links.all())
            )
        )
    return overview


@dataclass(frozen=True)
class ConsentHistoryEntry:
    """One consent version in words: what it switched on and off, and the state after it."""

    version: ConsentVersion
    granted: list[str]
    revoked: list[str]
    permitted: list[str]


def consent_history_entries(
    *, holder: RightsHolder, recording: Recording | None = None, work: Work | None = None
) -> list[ConsentHistoryEntry]:
    """`holder`'s consent versions for `recording` (or `work`), newest first, with labels for
    people."""
    return [
        ConsentHistoryEntry(
            version=version,
            granted=[consent_label(n) for n in version.granted],
            revoked=[consent_label(n) for n in version.revoked],
            permitted=[consent_label(n) for n in CONSENT_NAMES if version.permits(n)],
        )
        for version in consent_history(holder=holder, recording=recording, work=work)
    ]
