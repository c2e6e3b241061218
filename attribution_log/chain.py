"""The hash chain of the inference-time attribution log: canonical forms and digests.

Plain module (no Django), so an auditor can recompute a record's hashes from what the API
returns with nothing but this file.

* payload_sha256 = SHA-256 of the payload's canonical JSON: `json.dumps(payload,
  sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)` as UTF-8.
* record_hash = SHA-256 (UTF-8, hex) of these seven lines joined by "\\n", no trailing newline::

      ita-record-v1
      <sequence>              decimal, no padding
      <kind>                  verification | generation | generation_failed | correction
      <generation_ref>        may be empty; never contains a control character
      <created_at>            UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ (always six fraction digits)
      <previous_hash>         record_hash of the preceding record; 64 zeros for the first
      <payload_sha256>

  The newline separation is unambiguous because no field may contain a control character.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64
SCHEME = "ita-record-v1"
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


class PayloadError(ValueError):
    """The payload cannot be written as canonical JSON."""


def canonical_json(payload: Any) -> str:
    try:
        text = json.dumps(
            payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        text.encode("utf-8")  # lone surrogates cannot be hashed (or stored)
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise PayloadError(str(exc)) from exc
    return text


def payload_digest(payload: Any) -> str:
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def timestamp_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("created_at needs a time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def has_control_character(text: str) -> bool:
    return CONTROL_CHARACTER.search(text) is not None


def record_digest(
    *,
    sequence: int,
    kind: str,
    generation_ref: str,
    created_at: datetime,
    previous_hash: str,
    payload_sha256: str,
) -> str:
    fields = [kind, generation_ref, previous_hash, payload_sha256]
    if any(has_control_character(f) for f in fields):
        raise ValueError("record fields may not contain control characters")
    lines = [
        SCHEME,
        str(int(sequence)),
        kind,
        generation_ref,
        timestamp_text(created_at),
        previous_hash,
        payload_sha256,
    ]
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()
