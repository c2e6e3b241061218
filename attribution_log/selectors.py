"""Reads of the inference-time attribution log: chain verification and who may read what."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from attribution_log.chain import GENESIS_HASH, payload_digest, record_digest
from attribution_log.models import AttributionRecord
from config.exceptions import InvalidInput, NotFound

CHAIN_FIELDS = (
    "sequence",
    "kind",
    "generation_ref",
    "payload",
    "payload_sha256",
    "previous_hash",
    "record_hash",
    "created_at",
)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken_sequence: int | None = None
    reason: str = ""
    head_sequence: int | None = None  # the last intact record (the head when ok)
    head_hash: str = GENESIS_HASH


def _problem(row: tuple, expected_previous: str, previous_sequence: int | None) -> str:
    sequence, kind, ref, payload, payload_sha256, previous_hash, record_hash, created_at = row
    if payload_digest(payload) != payload_sha256:
        return "payload hash mismatch"
    if previous_hash != expected_previous:
        if previous_sequence is None:
            return "previous_hash does not link to the genesis hash (earlier records missing?)"
        return f"previous_hash does not link to record {previous_sequence}"
    recomputed = record_digest(
        sequence=sequence,
        kind=kind,
        generation_ref=ref,
        created_at=created_at,
        previous_hash=previous_hash,
        payload_sha256=payload_sha256,
    )
    if recomputed != record_hash:
        return "record hash mismatch"
    return ""


def attribution_chain_verify(
    *, batch_size: int = 5000, on_progress: Callable[[int], None] | None = None
) -> ChainReport:
    """Verify the whole log; `on_progress(checked)` is called after each batch."""
    if batch_size < 1:
        raise InvalidInput("batch_size must be at least 1")
    expected_previous, previous_sequence, checked = GENESIS_HASH, None, 0
    while True:
        rows = AttributionRecord.objects.order_by("sequence").values_list(*CHAIN_FIELDS)
        if previous_sequence is not None:
            rows = rows.filter(sequence__gt=previous_sequence)
        batch = list(rows[:batch_size])
        for row in batch:
            problem = _problem(row, expected_previous, previous_sequence)
            if problem:
                return ChainReport(
                    ok=False,
                    checked=checked,
                    first_broken_sequence=row[0],
                    reason=problem,
                    head_sequence=previous_sequence,
                    head_hash=expected_previous,
                )
            checked += 1
            previous_sequence, expected_previous = row[0], row[6]
        if on_progress is not None and batch:
            on_progress(checked)
        if len(batch) < batch_size:
            return ChainReport(
                ok=True,
                checked=checked,
                head_sequence=previous_sequence,
                head_hash=expected_previous,
            )


def attribution_records_for(*, generation_ref: str) -> QuerySet[AttributionRecord]:
    return AttributionRecord.objects.filter(generation_ref=generation_ref).order_by("sequence")


def attribution_records_visible_to(*, user: AbstractBaseUser) -> QuerySet[AttributionRecord]:
    """Staff read the whole log; others only records whose `payload["requested_by"]` is
    their user id."""
    records = AttributionRecord.objects.order_by("sequence")
    if getattr(user, "is_staff", False):
        return records
    return records.filter(payload__requested_by=user.pk)


def attribution_record_get(*, sequence: int) -> AttributionRecord:
    record = AttributionRecord.objects.filter(sequence=sequence).first()
    if record is None:
        raise NotFound(f"attribution record {sequence} does not exist")
    return record


def attribution_record_readable_by(*, user: AbstractBaseUser, sequence: int) -> AttributionRecord:
    """The record, if `user` may read it; otherwise NotFound, as if it did not exist."""
    record = attribution_record_get(sequence=sequence)
    if not getattr(user, "is_staff", False) and record.payload.get("requested_by") != user.pk:
        raise NotFound(f"attribution record {sequence} does not exist")
    return record
