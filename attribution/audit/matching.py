"""From clip hits to recordings, and the flag rule.

A recording's score for an output is the similarity of its best-matching clip pair (seed 003
returns the most similar songs by their most similar clips). An output is flagged when a
recording that was not among its references scores at or above the threshold: the case the
paper calls approximate memorisation. References are expected to be similar; they are paid
through inference-time attribution and are never a reason to flag.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ClipHit:
    output_start: float
    recording_id: int
    recording_start: float
    similarity: float


@dataclass(frozen=True)
class RecordingMatch:
    recording_id: int
    similarity: float  # best clip pair
    output_start: float
    recording_start: float
    is_reference: bool = False
    in_training_set: bool = False


def best_matches(
    hits: Iterable[ClipHit],
    *,
    k: int | None = None,
    reference_ids: Collection[int] = (),
    training_ids: Collection[int] = (),
) -> list[RecordingMatch]:
    """One match per recording (its best clip pair), most similar first, at most `k`."""
    best: dict[int, ClipHit] = {}
    for hit in hits:
        current = best.get(hit.recording_id)
        if current is None or hit.similarity > current.similarity:
            best[hit.recording_id] = hit
    ranked = sorted(best.values(), key=lambda h: (-h.similarity, h.recording_id))
    if k is not None:
        ranked = ranked[:k]
    references, training = set(reference_ids), set(training_ids)
    return [
        RecordingMatch(
            recording_id=h.recording_id,
            similarity=float(h.similarity),
            output_start=float(h.output_start),
            recording_start=float(h.recording_start),
            is_reference=h.recording_id in references,
            in_training_set=h.recording_id in training,
        )
        for h in ranked
    ]


def flagged_matches(matches: Iterable[RecordingMatch], *, threshold: float) -> list[RecordingMatch]:
    """Matches that make an output suspect: not a reference, similarity >= threshold."""
    return [m for m in matches if not m.is_reference and m.similarity >= threshold]
