"""The hash chain of dispute events: one linear chain over every dispute's steps.

Plain module (no Django), like `attribution_log.chain`, whose canonical JSON and timestamp
forms it uses:

* payload_sha256 = SHA-256 of the payload's canonical JSON (`attribution_log.chain`).
* record_hash = SHA-256 (UTF-8, hex) of these seven lines joined by "\\n"::

      dispute-event-v1
      <sequence>              decimal
      <dispute id>            decimal
      <kind>                  opened | held | note | upheld | rejected | expired
      <created_at>            UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ
      <previous_hash>         record_hash of the preceding event (any dispute); 64 zeros first
      <payload_sha256>
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from attribution_log.chain import GENESIS_HASH, canonical_json, payload_digest, timestamp_text

SCHEME = "dispute-event-v1"

__all__ = ["GENESIS_HASH", "SCHEME", "canonical_json", "event_digest", "payload_digest"]


def event_digest(
    *,
    sequence: int,
    dispute_id: int,
    kind: str,
    created_at: datetime,
    previous_hash: str,
    payload_sha256: str,
) -> str:
    lines = [
        SCHEME,
        str(int(sequence)),
        str(int(dispute_id)),
        kind,
        timestamp_text(created_at),
        previous_hash,
        payload_sha256,
    ]
    if any("\n" in line for line in lines):
        raise ValueError("event fields may not contain newlines")
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()
