"""Each recording's effective consent as bits on its embedding rows (`consent_mask`).

Vector search filters by these bits inside the HNSW index scan; the unanimity join of
`recordings_permitting` per scanned tuple made consent-filtered search 6-10x slower than
unfiltered (docs/retrieval.md). The bits are derived data: every service that changes what a
recording permits (a consent version for it or for a work it embodies, its shares, its work
links, new embedding rows) recomputes them in its own transaction, after locking the
recording rows, so two holders changing consent at once
cannot leave a mask computed from a state that was never committed.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

from catalog.models import (
    CONSENT_BIT_NAMES,
    ConsentVersion,
    CurrentConsent,
    Recording,
    RecordingEmbedding,
    RecordingWindowEmbedding,
    RecordingWork,
    RightsShare,
    WorkShare,
)

MASKED_TABLES = (RecordingWindowEmbedding._meta.db_table, RecordingEmbedding._meta.db_table)


def _masks_cte(recordings: str) -> str:
    """WITH ... masks(recording_id, mask): the bitwise AND, over each recording's master
    shares and the shares of every work it embodies, of each holder's current consent for
    that recording or work (no current version: 0); 0 for a recording without master shares."""
    bits = " | ".join(f"(v.{name}::int << {bit})" for bit, name in enumerate(CONSENT_BIT_NAMES))
    return f"""
        WITH wanted AS ({recordings}),
        per_holder AS (
            SELECT s.recording_id, TRUE AS master, COALESCE({bits}, 0) AS bits
            FROM {RightsShare._meta.db_table} s
            JOIN wanted w ON w.id = s.recording_id
            LEFT JOIN {CurrentConsent._meta.db_table} c
                   ON c.recording_id = s.recording_id AND c.holder_id = s.holder_id
            LEFT JOIN {ConsentVersion._meta.db_table} v ON v.id = c.version_id
            UNION ALL
            SELECT l.recording_id, FALSE AS master, COALESCE({bits}, 0) AS bits
            FROM {RecordingWork._meta.db_table} l
            JOIN wanted w ON w.id = l.recording_id
            JOIN {WorkShare._meta.db_table} s ON s.work_id = l.work_id
            LEFT JOIN {CurrentConsent._meta.db_table} c
                   ON c.work_id = s.work_id AND c.holder_id = s.holder_id
            LEFT JOIN {ConsentVersion._meta.db_table} v ON v.id = c.version_id
        ),
        masks AS (
            SELECT w.id AS recording_id,
                   CASE WHEN bool_or(p.master) THEN bit_and(p.bits) ELSE 0 END AS mask
            FROM wanted w LEFT JOIN per_holder p ON p.recording_id = w.id
            GROUP BY w.id
        )
    """


def _recordings(recording_ids: Iterable[int] | None) -> tuple[str, list]:
    if recording_ids is None:
        return f"SELECT id FROM {Recording._meta.db_table}", []
    return "SELECT unnest(%s::bigint[]) AS id", [sorted({int(r) for r in recording_ids})]


def consent_masks_refresh(*, recording_ids: Iterable[int] | None = None) -> int:
    """Recompute the masks of these recordings' embedding rows (all recordings if None);
    returns the number of rows rewritten (rows already right are left alone). Call inside the
    transaction that changed what they permit."""
    recordings, params = _recordings(recording_ids)
    if params and not params[0]:
        return 0
    changed = 0
    with connection.cursor() as cursor:
        for table in MASKED_TABLES:
            cursor.execute(
                _masks_cte(recordings)
                + f"""UPDATE {table} AS e SET consent_mask = m.mask FROM masks m
                      WHERE e.recording_id = m.recording_id
                        AND e.consent_mask IS DISTINCT FROM m.mask""",
                params,
            )
            changed += cursor.rowcount
    return changed


def consent_mask_of(*, recording_id: int) -> int:
    """The mask a new embedding row of this recording gets (so it is written once, into the
    indexes it belongs to, rather than inserted with 0 and rewritten)."""
    recordings, params = _recordings([recording_id])
    with connection.cursor() as cursor:
        cursor.execute(_masks_cte(recordings) + "SELECT mask FROM masks", params)
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def consent_masks_stale(*, recording_ids: Iterable[int] | None = None) -> list[int]:
    """Recordings with an embedding row whose mask differs from their consent (a read: the
    services never leave one; a write that bypassed them would)."""
    recordings, params = _recordings(recording_ids)
    stale: set[int] = set()
    with connection.cursor() as cursor:
        for table in MASKED_TABLES:
            cursor.execute(
                _masks_cte(recordings)
                + f"""SELECT DISTINCT e.recording_id FROM {table} e
                      JOIN masks m ON m.recording_id = e.recording_id
                      WHERE e.consent_mask IS DISTINCT FROM m.mask""",
                params,
            )
            stale.update(row[0] for row in cursor.fetchall())
    return sorted(stale)
