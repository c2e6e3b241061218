"""Searching an output's clips against the catalogue's (pgvector), and the near-copy check."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from attribution.audit import (
    AuditError,
    ClipHit,
    ClipSpec,
    RecordingMatch,
    best_matches,
    flagged_matches,
)
from attribution.audit.calibration import threshold_value
from attribution.services.audit.clips import (
    MAX_SEARCH_ROWS,
    _encoder,
    _space,
    audio_clip_vectors,
    audit_clip_spec,
    audit_encoder_version,
    current_calibration,
)
from catalog.models import EncoderVersion
from catalog.retrieval.vector_search import nearest_rows
from config.exceptions import InvalidInput

log = logging.getLogger(__name__)


# -- search ------------------------------------------------------------------------------------


def clip_hits(
    *,
    vector: np.ndarray,
    output_start: float,
    encoder_version: EncoderVersion,
    spec: ClipSpec,
    k: int,
    recording_ids: Collection[int] | None = None,
    excluded_ids: Collection[int] = (),
) -> list[ClipHit]:
    """Nearest catalogue clips of one query clip, enough to cover its k best recordings (a
    recording has many clips, so k clips are rarely k recordings). `recording_ids` limits
    the search to those recordings; `excluded_ids` leaves recordings out (studies)."""
    rows = _space(encoder_version, spec)
    if recording_ids is not None:
        rows = rows.filter(recording_id__in=list(recording_ids))
    if excluded_ids:
        rows = rows.exclude(recording_id__in=list(excluded_ids))
    limit = max(8 * k, 40)
    while True:
        found = nearest_rows(
            rows=rows,
            query=vector,
            limit=limit,
            values=("recording_id", "start_seconds"),
            filtered=recording_ids is not None or bool(excluded_ids),
        )
        if len({r for r, _, _ in found}) >= k or len(found) < limit or limit >= MAX_SEARCH_ROWS:
            break
        limit *= 4
    return [ClipHit(output_start, int(r), float(s), float(sim)) for r, s, sim in found]


@dataclass(frozen=True)
class SearchResult:
    matches: list[RecordingMatch]  # top k over the searched recordings
    references: dict[int, RecordingMatch]  # each reference's best clip pair


def clips_search(
    *,
    starts: Sequence[float],
    vectors: np.ndarray,
    encoder_version: EncoderVersion,
    spec: ClipSpec,
    k: int,
    reference_ids: Collection[int] = (),
    training_ids: Collection[int] = (),
    recording_ids: Collection[int] | None = None,
) -> SearchResult:
    """All output clips against all catalogue clips (or those of `recording_ids`): the top-k
    recordings by best clip pair, and every reference's best pair."""
    hits: list[ClipHit] = []
    for start, vector in zip(starts, vectors, strict=True):
        hits += clip_hits(
            vector=vector,
            output_start=start,
            encoder_version=encoder_version,
            spec=spec,
            k=k,
            recording_ids=recording_ids,
        )
    reference_hits: list[ClipHit] = []
    for reference in dict.fromkeys(reference_ids):
        for start, vector in zip(starts, vectors, strict=True):
            reference_hits += clip_hits(
                vector=vector,
                output_start=start,
                encoder_version=encoder_version,
                spec=spec,
                k=1,
                recording_ids=[reference],
            )[:1]
    matches = best_matches(hits, k=k, reference_ids=reference_ids, training_ids=training_ids)
    references = best_matches(
        reference_hits, reference_ids=reference_ids, training_ids=training_ids
    )
    return SearchResult(matches, {m.recording_id: m for m in references})


def near_copies(
    *,
    audio: np.ndarray,
    sample_rate: int,
    reference_ids: Collection[int],
    training_ids: Collection[int],
    k: int = 5,
) -> list[RecordingMatch]:
    """The audit's flags for any audio (not a stored generation): non-reference recordings
    whose best clip pair reaches the calibrated threshold. Evaluations use it to count near
    copies of training recordings without creating audit records."""
    import librosa

    spec = audit_clip_spec()
    encoder_version = audit_encoder_version()
    calibration = current_calibration(encoder_version=encoder_version, spec=spec)
    try:
        threshold = threshold_value(calibration.thresholds, str(settings.AUDIT_FLAG_THRESHOLD))
    except AuditError as exc:
        raise InvalidInput(f"settings.AUDIT_FLAG_THRESHOLD: {exc}") from exc
    encoder = _encoder(encoder_version)
    if sample_rate != encoder.sample_rate:
        audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=encoder.sample_rate)
    starts, vectors = audio_clip_vectors(audio=audio, encoder=encoder, spec=spec)
    result = clips_search(
        starts=starts, vectors=vectors, encoder_version=encoder_version, spec=spec, k=k,
        reference_ids=reference_ids, training_ids=training_ids,
    )  # fmt: skip
    return flagged_matches(result.matches, threshold=threshold)
