"""Verification: may these references be used at these levels for this distribution?

A read, run twice per generation: when the request is submitted and when the worker starts
(seed 004 section 5). Each verdict keeps the consent version ids it relied on, so the
attribution log can show exactly which consent a generation stood on. Refused references
come with permitted alternatives from the retrieval service (seed 004 section 5.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from catalog.models import LEVEL_USES, Distribution, Use
from catalog.selectors import HolderConsent, recordings_consent_state, recordings_existing
from config.exceptions import Conflict, NotFound

ALTERNATIVES_PER_REFERENCE = 5


@dataclass(frozen=True)
class ReferenceSpec:
    """One reference as the music maker asked for it."""

    recording_id: int
    level: str
    role: str
    weight: float
    segment_start: float | None = None
    segment_end: float | None = None


@dataclass
class ReferenceVerdict:
    position: int
    recording_id: int
    level: str
    permitted: bool
    reasons: list[str]
    consent_version_ids: list[int]
    alternatives: list[dict] = field(default_factory=list)


@dataclass
class Verification:
    distribution: str
    verdicts: list[ReferenceVerdict]

    @property
    def permitted(self) -> bool:
        return all(v.permitted for v in self.verdicts)

    @property
    def consent_version_ids(self) -> list[int]:
        return sorted({vid for v in self.verdicts for vid in v.consent_version_ids})

    def refusals(self) -> dict[str, dict]:
        """Per-reference reasons and alternatives, keyed by position, for error details."""
        return {
            str(v.position): {
                "recording": v.recording_id,
                "level": v.level,
                "reasons": v.reasons,
                "alternatives": v.alternatives,
            }
            for v in self.verdicts
            if not v.permitted
        }

    def to_record(self) -> list[dict]:
        return [asdict(v) for v in self.verdicts]


def _reasons(holders: list[HolderConsent], use: Use, distribution: Distribution) -> list[str]:
    if not any(h.work_id is None for h in holders):
        return ["no rights holders are registered for this recording"]
    reasons = []
    for holder in holders:
        version = holder.version
        if version is None:
            reasons.append(f"{holder.label} has not given consent for any use")
            continue
        if not version.permits(use.value):
            reasons.append(f"{holder.label} has not opted in to {use.label.lower()}")
        if not version.permits(distribution.value):
            reasons.append(f"{holder.label} does not permit {distribution.label.lower()}")
    return reasons


def references_verify(
    *, references: Sequence[ReferenceSpec], distribution: str, with_alternatives: bool = True
) -> Verification:
    """Check every reference against its holders' latest consent (unanimity)."""
    distribution = Distribution(distribution)
    ids = [ref.recording_id for ref in references]
    unknown = sorted(set(ids) - recordings_existing(recording_ids=ids))
    if unknown:
        raise NotFound(
            f"unknown recordings: {', '.join(map(str, unknown))}",
            details={"recordings": unknown},
        )
    state = recordings_consent_state(recording_ids=ids)
    verdicts = []
    for position, ref in enumerate(references):
        holders = state[ref.recording_id]
        reasons = _reasons(holders, LEVEL_USES[ref.level], distribution)
        verdict = ReferenceVerdict(
            position=position,
            recording_id=ref.recording_id,
            level=ref.level,
            permitted=not reasons,
            reasons=reasons,
            consent_version_ids=sorted(h.version.pk for h in holders if h.version is not None),
        )
        if not verdict.permitted and with_alternatives:
            verdict.alternatives = permitted_alternatives_for(
                recording_id=ref.recording_id, level=ref.level, distribution=distribution.value
            )
        verdicts.append(verdict)
    return Verification(distribution=distribution.value, verdicts=verdicts)


def permitted_alternatives_for(*, recording_id: int, level: str, distribution: str) -> list[dict]:
    """Nearest recordings that may be used as asked; empty if the catalogue is not embedded."""
    from catalog.retrieval.selectors import permitted_alternatives

    try:
        result = permitted_alternatives(
            recording_id=recording_id,
            level=level,
            distribution=distribution,
            k=ALTERNATIVES_PER_REFERENCE,
        )
    except Conflict:
        return []
    return [
        {
            "recording": hit.recording.pk,
            "title": hit.recording.title,
            "artist": hit.recording.artist.name,
            "score": round(hit.score, 4),
        }
        for hit in result.alternatives.hits
    ]
