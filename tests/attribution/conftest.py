"""Helpers for the attribution log tests: append records, and change rows the way only someone
who can switch the append-only triggers off (table owner, superuser) could."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from attribution_log.models import AttributionRecord
from attribution_log.services import attribution_record_append
from tests.generation.conftest import (  # noqa: F401  (a tiny generator for the TDA tests)
    embedded_catalogue,
    pricing,
    studio,
    tiny_checkpoint,
)

TABLE = AttributionRecord._meta.db_table


def append(n: int, *, requested_by: int = 1, prefix: str = "gen") -> list[AttributionRecord]:
    kinds = list(AttributionRecord.Kind)
    return [
        attribution_record_append(
            kind=kinds[i % len(kinds)],
            generation_ref=f"{prefix}-{i}",
            payload={
                "requested_by": requested_by,
                "references": [
                    {"recording_id": 10 + i, "level": "song", "role": "mood", "weight": 0.5},
                    {"recording_id": 20 + i, "level": "audio", "role": "timbre", "weight": 1.5},
                ],
                "consent_version_ids": [100 + i, 200 + i],
                "distribution": "commercial",
                "outcome": "ok",
            },
        )
        for i in range(n)
    ]


def bypassing_guard(sql: str, params: list | None = None) -> None:
    """Run `sql` with the table's user triggers disabled (as the table owner could)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        cursor.execute(sql, params or [])
        cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")


@pytest.fixture
def emptied_log_after(transactional_db):
    """Transactional tests commit records; Django's flush may truncate only an empty log, so
    empty it afterwards (bypassing the guard, as a test database's owner may)."""
    yield
    bypassing_guard(f"TRUNCATE {TABLE}")
