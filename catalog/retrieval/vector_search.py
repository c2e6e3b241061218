"""Nearest-neighbour reads over the embedding tables (HNSW, cosine) with filters in the query.

pgvector 0.8 iterative index scans keep scanning the HNSW graph until `limit` rows pass the
WHERE clause, so a selective consent filter still returns enough neighbours. `relaxed_order`
may return rows slightly out of order, so callers get them re-sorted by exact distance.

The consent filter tests the row's own `consent_mask` (no join per scanned tuple), which the
consent services keep in step in the transaction that changes consent; a level's use at a
distribution has its own partial index, so that search walks a graph of permitted rows only.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
from django.db import connection, transaction
from django.db.models import QuerySet
from pgvector import HalfVector
from pgvector.django import CosineDistance

from catalog.models import EMBEDDING_DIM, RecordingEmbedding, RecordingWindowEmbedding
from catalog.selectors import ConsentRequirement


@dataclass(frozen=True)
class SearchTuning:
    """HNSW query settings; recall grows with ef_search at some latency cost."""

    ef_search: int = 200  # recall@10 0.957 at 1M windows (0.933 at 100), bench_retrieval
    iterative_scan: str = "relaxed_order"  # off | strict_order | relaxed_order
    max_scan_tuples: int = 40_000
    # Rows fetched before exact re-sorting and truncation to the requested limit. With a
    # consent filter, HNSW's first candidate list holds too few permitted rows that are truly
    # nearest; asking for more makes the iterative scan explore further around the query
    # (bench_retrieval, 100k windows, 10% permitted: filtered recall@10 0.89 with 40, 0.90
    # with 100, 0.96 with 200).
    min_candidates: int = 40
    min_filtered_candidates: int = 200

    def rows_to_fetch(self, limit: int, *, filtered: bool) -> int:
        return max(limit, self.min_filtered_candidates if filtered else self.min_candidates)


DEFAULT_TUNING = SearchTuning()


@dataclass(frozen=True)
class WindowHit:
    recording_id: int
    start_seconds: float
    similarity: float


def as_query_vector(vector: np.ndarray) -> HalfVector:
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    if vector.shape[0] != EMBEDDING_DIM or not np.all(np.isfinite(vector)):
        raise ValueError(f"query vector must be {EMBEDDING_DIM} finite numbers")
    return HalfVector(vector)


def _apply_tuning(tuning: SearchTuning) -> None:
    with connection.cursor() as cursor:  # one round trip, scoped to the transaction
        cursor.execute(
            "SELECT set_config('hnsw.ef_search', %s, true), "
            "set_config('hnsw.iterative_scan', %s, true), "
            "set_config('hnsw.max_scan_tuples', %s, true)",
            [str(tuning.ef_search), tuning.iterative_scan, str(tuning.max_scan_tuples)],
        )


def _consent_filtered(
    rows: QuerySet, consent: ConsentRequirement | None, exclude: Collection[int]
) -> QuerySet:
    if consent is not None:
        rows = rows.filter(consent_mask__in=consent.masks)
    if exclude:
        rows = rows.exclude(recording_id__in=list(exclude))
    return rows


def _filters_in_scan(consent: ConsentRequirement | None) -> bool:
    """Whether the window scan filters rows out (no partial index holds just the permitted
    ones), so more candidates are needed before exact re-sorting."""
    return consent is not None and not consent.has_search_index


def window_neighbours(
    *,
    query: np.ndarray,
    encoder_id: int,
    limit: int,
    consent: ConsentRequirement | None = None,
    exclude: Collection[int] = (),
    window_seconds: float | None = None,
    tuning: SearchTuning = DEFAULT_TUNING,
) -> list[WindowHit]:
    """The `limit` windows nearest to `query`, only of recordings whose consent meets
    `consent` if given and not in `exclude`."""
    windows = RecordingWindowEmbedding.objects.filter(encoder_id=encoder_id)
    if window_seconds is not None:
        windows = windows.filter(window_seconds=window_seconds)
    windows = _consent_filtered(windows, consent, exclude)
    windows = windows.annotate(distance=CosineDistance("embedding", as_query_vector(query)))
    fetch = tuning.rows_to_fetch(limit, filtered=_filters_in_scan(consent))
    with transaction.atomic():
        _apply_tuning(tuning)
        rows = list(
            windows.order_by("distance").values_list("recording_id", "start_seconds", "distance")[
                :fetch
            ]
        )
    rows.sort(key=lambda row: row[2])
    return [WindowHit(r, s, 1.0 - d) for r, s, d in rows[:limit]]


def recording_neighbours(
    *,
    query: np.ndarray,
    encoder_id: int,
    limit: int,
    consent: ConsentRequirement | None = None,
    exclude: Collection[int] = (),
    tuning: SearchTuning = DEFAULT_TUNING,
) -> list[tuple[int, float]]:
    """(recording_id, similarity) of the `limit` nearest track-level vectors."""
    tracks = _consent_filtered(
        RecordingEmbedding.objects.filter(encoder_id=encoder_id), consent, exclude
    )
    tracks = tracks.annotate(distance=CosineDistance("embedding", as_query_vector(query)))
    fetch = tuning.rows_to_fetch(limit, filtered=consent is not None)
    with transaction.atomic():
        _apply_tuning(tuning)
        rows = list(tracks.order_by("distance").values_list("recording_id", "distance")[:fetch])
    rows.sort(key=lambda row: row[1])
    return [(r, 1.0 - d) for r, d in rows[:limit]]


def nearest_rows(
    *,
    rows: QuerySet,
    query: np.ndarray,
    limit: int,
    values: tuple[str, ...],
    filtered: bool = False,
    tuning: SearchTuning = DEFAULT_TUNING,
) -> list[tuple]:
    """The `limit` rows of any table with an `embedding` halfvec column (HNSW, cosine) nearest
    to `query`, as `values` + (similarity,), most similar first. `rows` carries the filters
    (encoder, clip spec, recording set), so they run in the same statement as the ORDER BY;
    `filtered` says the filter is selective (more candidates are fetched before re-sorting).
    The similarity audit's clip table (attribution) is searched through this."""
    rows = rows.annotate(distance=CosineDistance("embedding", as_query_vector(query)))
    fetch = tuning.rows_to_fetch(limit, filtered=filtered)
    with transaction.atomic():
        _apply_tuning(tuning)
        found = list(rows.order_by("distance").values_list(*values, "distance")[:fetch])
    found.sort(key=lambda row: row[-1])
    return [(*row[:-1], 1.0 - row[-1]) for row in found[:limit]]
