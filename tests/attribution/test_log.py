"""The attribution log: a linked hash chain that the database keeps append-only, whose
verification names exactly the first record someone changed behind the guard's back."""

from __future__ import annotations

import hashlib
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from attribution_log.chain import GENESIS_HASH, payload_digest, record_digest
from attribution_log.models import AttributionRecord
from attribution_log.selectors import (
    attribution_chain_verify,
    attribution_record_get,
    attribution_records_for,
)
from attribution_log.services import attribution_record_append
from config.exceptions import InvalidInput, NotFound
from tests.attribution.conftest import TABLE, append, bypassing_guard

pytestmark = pytest.mark.django_db


def verify_command(*args: str) -> str:
    out = StringIO()
    call_command("verify_attribution_log", *args, stdout=out)
    return out.getvalue()


def broken(*args: str) -> str:
    with pytest.raises(CommandError) as failure:
        verify_command(*args)
    return str(failure.value)


def rehash(record: AttributionRecord, **changes) -> str:
    fields = {
        "sequence": record.sequence,
        "kind": record.kind,
        "generation_ref": record.generation_ref,
        "created_at": record.created_at,
        "previous_hash": record.previous_hash,
        "payload_sha256": record.payload_sha256,
    }
    return record_digest(**{**fields, **changes})


def test_appends_build_a_linked_chain_that_verifies():
    records = append(5)
    assert records[0].previous_hash == GENESIS_HASH
    for before, after in zip(records, records[1:], strict=False):
        assert after.previous_hash == before.record_hash
        assert after.sequence > before.sequence
    for record in records:
        stored = AttributionRecord.objects.get(sequence=record.sequence)
        assert stored.payload_sha256 == payload_digest(stored.payload)
        assert stored.record_hash == rehash(stored)  # the documented scheme, from the row

    report = attribution_chain_verify(batch_size=2)  # crosses batch boundaries
    assert report.ok and report.checked == 5
    assert report.head_sequence == records[-1].sequence
    assert report.head_hash == records[-1].record_hash

    output = verify_command("--batch-size", "2")
    assert "2 / 5 records checked" in output
    assert f"5 records checked; head #{records[-1].sequence} {records[-1].record_hash}" in output
    assert attribution_record_get(sequence=records[2].sequence) == records[2]
    assert list(attribution_records_for(generation_ref="gen-3")) == [records[3]]
    with pytest.raises(NotFound):
        attribution_record_get(sequence=records[-1].sequence + 1000)


def test_an_empty_log_verifies():
    assert attribution_chain_verify().ok
    assert "0 records checked; head none (empty log)" in verify_command()


def test_the_hash_scheme_is_reproducible_by_hand():
    record = append(1)[0]
    text = "\n".join(
        [
            "ita-record-v1",
            str(record.sequence),
            record.kind,
            record.generation_ref,
            record.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            GENESIS_HASH,
            record.payload_sha256,
        ]
    )
    assert hashlib.sha256(text.encode()).hexdigest() == record.record_hash


def test_appends_join_the_callers_transaction():
    first = append(1)[0]
    with pytest.raises(RuntimeError, match="caller failed"), transaction.atomic():
        append(2, prefix="doomed")
        raise RuntimeError("caller failed")
    assert not AttributionRecord.objects.filter(generation_ref__startswith="doomed").exists()
    after = append(1, prefix="later")[0]
    assert after.previous_hash == first.record_hash  # the rolled-back records left no trace
    assert attribution_chain_verify().ok


def test_payloads_are_hashed_as_the_database_keeps_them():
    record = attribution_record_append(
        kind="generation",
        generation_ref="numbers",
        payload={"big": 1e20, "tiny": 1.5e-10, "weights": [0.1, 0.2], "name": "Café ♪"},
    )
    stored = AttributionRecord.objects.get(sequence=record.sequence)
    assert stored.payload == record.payload
    assert stored.payload["big"] == 10**20  # jsonb writes 1e20 as an integer
    assert payload_digest(stored.payload) == stored.payload_sha256
    assert attribution_chain_verify().ok


@pytest.mark.parametrize(
    "kind, ref, payload, message",
    [
        ("generation", "g", {"weight": float("nan")}, "not canonical JSON"),
        ("generation", "g", {"weight": float("inf")}, "not canonical JSON"),
        ("generation", "g", {"when": object()}, "not canonical JSON"),
        ("generation", "g", {"refs": {1, 2}}, "not canonical JSON"),
        ("generation", "g", {1: "a", "b": 2}, "not canonical JSON"),
        ("generation", "g", {"s": "\ud800"}, "not canonical JSON"),
        ("generation", "g", {"s": "nul\u0000"}, "cannot be stored"),
        ("generation", "g", ["not", "an", "object"], "must be a JSON object"),
        ("published", "g", {}, "unknown attribution record kind"),
        ("generation", "g\nforged", {}, "control characters"),
        ("generation", "x" * 65, {}, "at most 64 characters"),
    ],
)
def test_bad_appends_are_refused_and_append_nothing(kind, ref, payload, message):
    append(1)
    with pytest.raises(InvalidInput, match=message):
        attribution_record_append(kind=kind, generation_ref=ref, payload=payload)
    assert AttributionRecord.objects.count() == 1  # the test's transaction is still usable
    assert attribution_chain_verify().ok


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {table} SET payload = '{{}}'::jsonb WHERE sequence = {seq}",
        "UPDATE {table} SET generation_ref = 'other' WHERE sequence = {seq}",
        "DELETE FROM {table} WHERE sequence = {seq}",
        "TRUNCATE {table}",
    ],
)
def test_the_database_refuses_to_change_or_remove_records(statement):
    record = append(2)[0]
    refused = pytest.raises(Exception, match="append-only")
    with refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement.format(table=TABLE, seq=record.sequence))
    assert AttributionRecord.objects.get(sequence=record.sequence).payload == record.payload
    assert AttributionRecord.objects.count() == 2


def test_a_changed_payload_is_named():
    records = append(5)
    target = records[2]
    bypassing_guard(
        f"UPDATE {TABLE} SET payload = jsonb_set(payload, '{{references,0,weight}}', '9.5') "
        "WHERE sequence = %s",
        [target.sequence],
    )
    message = broken()
    assert (
        f"BROKEN at record {target.sequence} (kind {target.kind}, generation_ref 'gen-2'): "
        "payload hash mismatch; 2 records before it are intact"
    ) in message
    report = attribution_chain_verify()
    assert (report.ok, report.first_broken_sequence) == (False, target.sequence)
    assert report.head_sequence == records[1].sequence


def test_a_changed_payload_with_a_recomputed_payload_hash_is_named():
    records = append(5)
    target = records[3]
    forged = {**target.payload, "distribution": "private"}
    bypassing_guard(
        f"UPDATE {TABLE} SET payload = %s::jsonb, payload_sha256 = %s WHERE sequence = %s",
        [
            json.dumps(forged),
            payload_digest(forged),
            target.sequence,
        ],
    )
    message = broken()
    assert f"BROKEN at record {target.sequence} " in message
    assert "record hash mismatch" in message


def test_a_fully_rehashed_record_breaks_the_link_of_the_next_one():
    records = append(5)
    target = records[1]
    forged = {**target.payload, "outcome": "refused"}
    forged_sha = payload_digest(forged)
    bypassing_guard(
        f"UPDATE {TABLE} SET payload = %s::jsonb, payload_sha256 = %s, record_hash = %s "
        "WHERE sequence = %s",
        [
            json.dumps(forged),
            forged_sha,
            rehash(target, payload_sha256=forged_sha),
            target.sequence,
        ],
    )
    message = broken()
    assert (
        f"BROKEN at record {records[2].sequence} (kind {records[2].kind}, generation_ref "
        f"'gen-2'): previous_hash does not link to record {target.sequence}"
    ) in message


def test_a_deleted_record_is_named_by_its_successor():
    records = append(5)
    bypassing_guard(f"DELETE FROM {TABLE} WHERE sequence = %s", [records[2].sequence])
    message = broken("--batch-size", "2")
    assert f"BROKEN at record {records[3].sequence} " in message
    assert f"previous_hash does not link to record {records[1].sequence}" in message

    bypassing_guard(f"DELETE FROM {TABLE} WHERE sequence = %s", [records[0].sequence])
    message = broken()
    assert f"BROKEN at record {records[1].sequence} " in message
    assert "does not link to the genesis hash" in message


def test_an_anchor_catches_records_removed_from_the_end():
    records = append(4)
    anchor = f"{records[-1].sequence}:{records[-1].record_hash}"
    assert f"Anchor record {records[-1].sequence} matches" in verify_command("--anchor", anchor)
    bypassing_guard(f"DELETE FROM {TABLE} WHERE sequence = %s", [records[-1].sequence])
    assert attribution_chain_verify().ok  # the chain alone cannot see a shorter log
    assert f"record {records[-1].sequence} is missing" in broken("--anchor", anchor)
    assert "must be SEQUENCE:HASH" in broken("--anchor", "latest")
