"""Reading a WAV back: its embedded provenance and INFO fields, and the C2PA manifest with its
validation (integrity and trust); also the c2pa settings the signer shares."""

from __future__ import annotations

import json
import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from generation.provenance.record import (
    OWN_NAMESPACE,
    PROVENANCE_CHUNK_ID,
    TRAINING_MINING,
    WAV_MEDIA_TYPE,
    ProvenanceError,
)

logger = logging.getLogger(__package__)  # "generation.provenance", as before the split

# Failure codes that describe the signing credential (trust, expiry, revocation), not whether
# the signed content is intact.
_CREDENTIAL_CODE_PREFIXES = ("signingCredential.", "timeStamp.")
_TRUSTED_CODE = "signingCredential.trusted"


@dataclass(frozen=True)
class ProvenanceReport:
    embedded: dict | None  # from the custom RIFF chunk
    manifest: dict | None  # active C2PA manifest (parsed JSON)
    validation_errors: list[str]  # failure codes from the c2pa validation status
    trusted: bool  # signer chains to a configured trust anchor
    intact: bool  # a manifest is present and reports no integrity failure
    info: dict[str, str] = field(default_factory=dict)  # LIST/INFO fields, e.g. {"ICMT": ...}
    validation_state: str | None = None  # c2pa's summary: Invalid / Valid / Trusted


def read_provenance(path: Path, trust_anchors_pem: bytes | None = None) -> ProvenanceReport:
    """Read the embedded provenance and validate the C2PA manifest of a WAV file.

    `trust_anchors_pem`: root certificate(s) to trust; None leaves c2pa's defaults, which do
    not include this platform's roots. A WAV without a manifest gives ``manifest=None``,
    ``trusted=False`` and ``intact=False`` (nothing vouches for it). Raises ProvenanceError
    for a missing file, a file that is not RIFF/WAVE, or a manifest c2pa cannot parse.
    """
    import c2pa

    path = Path(path)
    riff = _read_wav(path)
    try:
        with path.open("rb") as stream:
            reader = c2pa.Reader.try_create(
                WAV_MEDIA_TYPE, stream, context=c2pa.Context.from_dict(_settings(trust_anchors_pem))
            )
            if reader is None:
                return ProvenanceReport(riff.embedded, None, [], False, False, riff.info)
            with reader:
                store = json.loads(reader.json())
                lossless = _lossless_assertions(reader, store.get("active_manifest"))
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"cannot read C2PA data in {path}: {exc}") from exc
    except OSError as exc:
        raise ProvenanceError(f"cannot read {path}: {exc}") from exc

    manifest = store.get("manifests", {}).get(store.get("active_manifest"))
    if manifest is not None:
        _restore_own_data(manifest, lossless)
    successes, failures = _status_codes(store)
    integrity_failures = [c for c in failures if not c.startswith(_CREDENTIAL_CODE_PREFIXES)]
    return ProvenanceReport(
        embedded=riff.embedded,
        manifest=manifest,
        validation_errors=failures,
        trusted=manifest is not None
        and _TRUSTED_CODE in successes
        and "signingCredential.untrusted" not in failures,
        intact=manifest is not None and not integrity_failures,
        info=riff.info,
        validation_state=store.get("validation_state"),
    )


def _status_codes(store: dict) -> tuple[set[str], list[str]]:
    results = store.get("validation_results")
    if not results:  # older stores: a flat list of problems
        return set(), [s["code"] for s in store.get("validation_status") or [] if "code" in s]
    active = results.get("activeManifest") or {}
    successes = {s.get("code") for s in active.get("success") or []}
    failures = [s["code"] for s in active.get("failure") or [] if "code" in s]
    for delta in results.get("ingredientDeltas") or []:
        failures += [
            s["code"]
            for s in (delta.get("validationDeltas") or {}).get("failure") or []
            if "code" in s
        ]
    return successes, failures


def _lossless_assertions(reader: Any, label: str | None) -> dict[str, Any]:
    """Assertions of the active manifest as decoded by ``crjson()`` (see package docstring)."""
    try:
        crjson = json.loads(reader.crjson())
    except Exception:  # best effort: an SDK without crjson leaves json() as it is
        logger.debug("crjson unavailable", exc_info=True)
        return {}
    for manifest in crjson.get("manifests") or []:
        if manifest.get("label") == label:
            return manifest.get("assertions") or {}
    return {}


def _restore_own_data(manifest: dict, lossless: dict[str, Any]) -> None:
    for assertion in manifest.get("assertions") or []:
        label = assertion.get("label", "")
        if label.startswith(OWN_NAMESPACE) and isinstance(lossless.get(label), dict):
            assertion["data"] = lossless[label]
    for ingredient in manifest.get("ingredients") or []:
        source = (lossless.get(ingredient.get("label", "")) or {}).get("metadata") or {}
        shown = ingredient.get("metadata") or {}
        for key in shown:
            if (key.startswith(OWN_NAMESPACE) or key == TRAINING_MINING) and key in source:
                shown[key] = source[key]


def _settings(trust_anchors_pem: bytes | None) -> dict:
    settings: dict[str, Any] = {
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
        "builder": {"thumbnail": {"enabled": False}},
    }
    if trust_anchors_pem:
        settings["trust"] = {"trust_anchors": trust_anchors_pem.decode("ascii")}
    return settings


@dataclass(frozen=True)
class _RiffContents:
    embedded: dict | None
    info: dict[str, str]


def _read_wav(path: Path) -> _RiffContents:
    """The INFO fields and the embedded provenance of a RIFF/WAVE file."""
    try:
        with Path(path).open("rb") as f:
            header = f.read(12)
            if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
                raise ProvenanceError(f"{path} is not a RIFF/WAVE file")
            embedded: dict | None = None
            info: dict[str, str] = {}
            for chunk_id, size in _chunks(f):
                if chunk_id == PROVENANCE_CHUNK_ID:
                    embedded = _decode_embedded(f.read(size), path)
                elif chunk_id == b"LIST" and size >= 4:
                    body = f.read(size)
                    if body[:4] == b"INFO":
                        info = _decode_info(body[4:])
    except OSError as exc:
        raise ProvenanceError(f"cannot read {path}: {exc}") from exc
    return _RiffContents(embedded, info)


def _chunks(f: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """Yield (id, size) of each top-level chunk with `f` at its payload; skips what is unread."""
    position = 12
    end = f.seek(0, os.SEEK_END)
    while position + 8 <= end:
        f.seek(position)
        chunk_id, size = struct.unpack("<4sI", f.read(8))
        if position + 8 + size > end:
            return  # truncated chunk: nothing more can be trusted to be a chunk
        yield chunk_id, size
        position += 8 + size + (size % 2)


def _decode_embedded(payload: bytes, path: Path) -> dict | None:
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        logger.warning("%s: embedded provenance chunk is not valid JSON", path)
        return None
    return data if isinstance(data, dict) else None


def _decode_info(body: bytes) -> dict[str, str]:
    info: dict[str, str] = {}
    position = 0
    while position + 8 <= len(body):
        key, size = struct.unpack("<4sI", body[position : position + 8])
        value = body[position + 8 : position + 8 + size]
        info[key.decode("ascii", "replace")] = value.rstrip(b"\0").decode("utf-8", "replace")
        position += 8 + size + (size % 2)
    return info
