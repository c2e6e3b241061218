"""Writes of the attribution app: appending to the inference-time attribution log.

The log is one linear hash chain, so appends are serialised: inside `transaction.atomic()`
the service takes a transaction-level advisory lock (one fixed key), reads the head's hash,
draws the next sequence number and inserts. The lock is held until the outermost transaction
ends, so a caller that appends in the same transaction as its own writes keeps the log's
order equal to commit order, and a rolled-back append leaves no record (only a gap in the
sequence numbers, which the chain does not depend on). Other appends wait for that commit,
so append late in a long transaction.

This relies on READ COMMITTED (Django's default): each statement after the lock sees the
record that the previous lock holder committed. Under REPEATABLE READ the snapshot could
predate it, so the service refuses to run there.

Sequence is drawn with `nextval` before hashing (rather than hashed without it) so a
record's hash binds its position; the hashing scheme itself lives in `attribution.chain`.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import DataError, connection, transaction
from django.utils import timezone

from attribution_log.chain import (
    GENESIS_HASH,
    PayloadError,
    canonical_json,
    has_control_character,
    payload_digest,
    record_digest,
)
from attribution_log.models import AttributionRecord
from config.exceptions import InvalidInput

# pg_advisory_xact_lock key of the log (any fixed bigint; "ITA log" in ASCII).
LOG_LOCK_KEY = 0x4954_41_6C_6F_67


def stored_form(payload: dict, what: str = "attribution payload") -> dict:
    """The payload as the database will return it. jsonb normalises numbers (1e+20 comes back
    as 100000000000000000000), so the hash is taken over the round-tripped value; otherwise a
    verifier re-reading the row could compute a different hash from the same record. `what`
    names the record in errors (the dispute chain uses this too)."""
    try:
        text = canonical_json(payload)
    except PayloadError as exc:
        raise InvalidInput(
            f"the {what} is not canonical JSON: {exc}",
            details={"payload": "only JSON types, finite numbers and string keys"},
        ) from exc
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT %s::jsonb::text", [text])
            stored = cursor.fetchone()[0]
    except DataError as exc:  # e.g. \u0000, which jsonb cannot hold
        raise InvalidInput(f"the {what} cannot be stored: {exc}") from exc
    return json.loads(stored)


def chain_next(cursor, *, table: str, lock_key: int, name: str) -> tuple[int, str]:
    """(sequence, previous hash) of the next record of a hash chain stored in `table`, inside
    the appending transaction: takes the chain's advisory lock (held to commit), reads the
    head's hash and draws the next sequence number. Refused outside READ COMMITTED (see the
    module docstring); `name` says which chain in that error."""
    cursor.execute("SHOW transaction_isolation")
    isolation = cursor.fetchone()[0]
    if isolation != "read committed":
        raise RuntimeError(f"the {name} is appended under READ COMMITTED, not {isolation}")
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key])
    cursor.execute(f"SELECT record_hash FROM {table} ORDER BY sequence DESC LIMIT 1")
    head = cursor.fetchone()
    cursor.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', 'sequence'))")
    return cursor.fetchone()[0], (head[0] if head else GENESIS_HASH)


def attribution_record_append(
    *, kind: str, generation_ref: str, payload: dict[str, Any]
) -> AttributionRecord:
    """Append one record to the log and return it (saved, hashes set).

    `payload` is any JSON object; the generation service sets `payload["requested_by"]` to
    the requesting user's id (non-staff API readers see only their own records)."""
    if kind not in AttributionRecord.Kind.values:
        raise InvalidInput(
            f"unknown attribution record kind '{kind}'",
            details={"kind": kind, "expected": AttributionRecord.Kind.values},
        )
    if not isinstance(payload, dict):
        raise InvalidInput("the attribution payload must be a JSON object")
    if (
        not isinstance(generation_ref, str)
        or len(generation_ref) > 64
        or has_control_character(generation_ref)
    ):
        raise InvalidInput(
            "generation_ref is at most 64 characters without control characters",
            details={"generation_ref": str(generation_ref)[:80]},
        )
    stored = stored_form(payload)
    payload_sha256 = payload_digest(stored)
    table = AttributionRecord._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        sequence, previous_hash = chain_next(
            cursor, table=table, lock_key=LOG_LOCK_KEY, name="attribution log"
        )
        created_at = timezone.now()
        record = AttributionRecord(
            sequence=sequence,
            kind=kind,
            generation_ref=generation_ref,
            payload=stored,
            payload_sha256=payload_sha256,
            previous_hash=previous_hash,
            created_at=created_at,
            record_hash=record_digest(
                sequence=sequence,
                kind=kind,
                generation_ref=generation_ref,
                created_at=created_at,
                previous_hash=previous_hash,
                payload_sha256=payload_sha256,
            ),
        )
        record.save(force_insert=True)
    return record
