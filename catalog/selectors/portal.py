"""What the rights-holder portal shows: consent names, labels and explanations, each
recording's and work's toggles beside its co-holders, and consent history in words."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from catalog.models import (
    CONSENT_BIT_NAMES,
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
)
from catalog.selectors.consent import (
    HolderConsent,
    consent_history,
    parse_distribution,
    recordings_consent_state,
)
from config.exceptions import InvalidInput

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
