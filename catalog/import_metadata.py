"""Curated metadata for an import: a JSON or CSV file that adds or overrides what the audio
files' own tags say. Plain module.

JSON::

    {"defaults": {"genre": "Electronic", "release": "OST"},
     "files": {"sub/track1.ogg": {"title": "Opening", "moods": ["calm"]}}}

CSV: a `path` column (relative to the imported folder) plus any of the fields below;
list fields are separated by `;`. A file entry may set `"skip": true` to leave a file out, and
`"tdm_reservation": 1` (TDMRep, with an optional `"tdm_policy"` URL) to reserve its
text-and-data-mining rights: training then stays not granted unless a holder confirms
overriding the reservation (as for a Data Mining prohibition in the file's own XMP).

Musical works (optional): a top-level `works` list in the JSON file, or a separate works CSV
(`load_works_csv`). Each work has a title, an optional ISWC, its writers' and publishers'
shares (holder name, optional IPI, role, basis points summing to 10,000) and the files that
embody it with their basis points (a file's links over all works sum to 10,000)::

    {"works": [{"title": "Opening", "iswc": "T-034.524.680-1",
                "shares": [{"holder": "Ada Writer", "ipi": "00014107338",
                            "role": "composer", "basis_points": 5000},
                           {"holder": "Demo Publishing", "ipi": "00052210040",
                            "role": "publisher", "basis_points": 5000}],
                "recordings": {"sub/track1.ogg": 10000}}]}

Only the shape is checked here; `catalog.services.works_import` checks the rest (ISWC check
digit, roles, sums, holders, files) before anything is imported.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

TEXT_FIELDS = frozenset(
    {"title", "artist", "release", "release_artist", "genre", "subgenre", "country", "isrc"}
)
LIST_FIELDS = frozenset({"instruments", "moods"})
# TDMRep: 1 reserves text-and-data-mining rights for the file (training stays not granted
# unless a holder confirms overriding it), with an optional policy URL.
TDM_FIELDS = frozenset({"tdm_reservation", "tdm_policy"})
ALL_FIELDS = TEXT_FIELDS | LIST_FIELDS | TDM_FIELDS | {"year", "skip"}
TDM_POLICY_PATTERN = re.compile(r"^https?://[^\s]{1,490}$")


class MetadataError(ValueError):
    """The metadata file cannot be used; nothing is imported."""


def _clean_entry(entry: dict, where: str) -> dict:
    if not isinstance(entry, dict):
        raise MetadataError(f"{where}: expected an object of fields")
    unknown = set(entry) - ALL_FIELDS
    if unknown:
        raise MetadataError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(ALL_FIELDS))}"
        )
    cleaned: dict = {}
    for key, value in entry.items():
        if value in (None, ""):
            continue
        if key in LIST_FIELDS:
            items = value.split(";") if isinstance(value, str) else value
            if not isinstance(items, list):
                raise MetadataError(f"{where}: '{key}' must be a list")
            cleaned[key] = [str(item).strip().lower() for item in items if str(item).strip()]
        elif key == "year":
            try:
                cleaned[key] = int(value)
            except (TypeError, ValueError):
                raise MetadataError(f"{where}: year must be a number, got {value!r}") from None
        elif key == "skip":
            cleaned[key] = value is True or str(value).lower() in {"1", "true", "yes"}
        elif key == "tdm_reservation":
            if value is True or value is False or str(value).strip() in {"0", "1"}:
                cleaned[key] = int(value) if isinstance(value, bool) else int(str(value).strip())
            else:
                raise MetadataError(
                    f"{where}: tdm_reservation must be 0 or 1 (TDMRep), got {value!r}"
                )
        elif key == "tdm_policy":
            if not isinstance(value, str) or not TDM_POLICY_PATTERN.match(value.strip()):
                raise MetadataError(
                    f"{where}: tdm_policy must be an http(s) URL of at most 500 characters, "
                    f"got {value!r}"
                )
            cleaned[key] = value.strip()
        else:
            cleaned[key] = str(value).strip()
    return cleaned


@dataclass(frozen=True)
class WorkShareEntry:
    holder: str
    ipi: str
    role: str
    basis_points: int


@dataclass(frozen=True)
class WorkEntry:
    """One work as the file describes it; `where` locates it for error messages."""

    title: str
    iswc: str
    shares: tuple[WorkShareEntry, ...]
    recordings: tuple[tuple[str, int], ...]  # (file path, basis points)
    where: str


WORK_FIELDS = frozenset({"title", "iswc", "shares", "recordings"})
WORK_SHARE_FIELDS = frozenset({"holder", "ipi", "role", "basis_points"})
WORKS_CSV_COLUMNS = (
    "work_title", "iswc", "holder", "ipi", "role", "basis_points",
    "recording_path", "link_basis_points",
)  # fmt: skip


def _whole_number(value: object, where: str, what: str) -> int:
    if isinstance(value, bool):
        raise MetadataError(f"{where}: {what} must be a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise MetadataError(f"{where}: {what} must be a whole number, got {value!r}") from None


def _text(value: object, where: str, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int):
        raise MetadataError(f"{where}: {what} must be text, got {value!r}")
    return str(value).strip()


def _work_entry(raw: object, where: str) -> WorkEntry:
    if not isinstance(raw, dict):
        raise MetadataError(f"{where}: expected an object with a title, shares and recordings")
    unknown = set(raw) - WORK_FIELDS
    if unknown:
        raise MetadataError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(WORK_FIELDS))}"
        )
    title = _text(raw.get("title"), where, "title")
    if not title:
        raise MetadataError(f"{where}: a work needs a title")
    where = f"{where} '{title}'"
    shares_raw = raw.get("shares")
    if not isinstance(shares_raw, list) or not shares_raw:
        raise MetadataError(f"{where}: 'shares' must be a non-empty list of writers/publishers")
    shares = []
    for number, share in enumerate(shares_raw):
        at = f"{where}: shares[{number}]"
        if not isinstance(share, dict) or set(share) - WORK_SHARE_FIELDS:
            raise MetadataError(
                f"{at}: expected an object with {', '.join(sorted(WORK_SHARE_FIELDS))}"
            )
        holder = _text(share.get("holder"), at, "holder")
        if not holder:
            raise MetadataError(f"{at}: a share needs a holder name")
        shares.append(
            WorkShareEntry(
                holder=holder,
                ipi=_text(share.get("ipi"), at, "ipi"),
                role=_text(share.get("role"), at, "role"),
                basis_points=_whole_number(share.get("basis_points"), at, "basis_points"),
            )
        )
    recordings_raw = raw.get("recordings") or {}
    if not isinstance(recordings_raw, dict):
        raise MetadataError(f"{where}: 'recordings' must map file paths to basis points")
    recordings = tuple(
        (str(path).strip(), _whole_number(bp, f"{where}: recordings[{path}]", "basis points"))
        for path, bp in recordings_raw.items()
    )
    return WorkEntry(
        title=title,
        iswc=_text(raw.get("iswc"), where, "iswc"),
        shares=tuple(shares),
        recordings=recordings,
        where=where,
    )


def load_works_csv(path: Path) -> tuple[WorkEntry, ...]:
    """Works from a CSV with the columns `WORKS_CSV_COLUMNS`, one row per share and/or
    recording link. Rows with the same work_title and iswc are one work; a row with a holder
    adds a share (role, basis_points), a row with a recording_path links that file
    (link_basis_points, default 10000)."""
    path = Path(path)
    if not path.is_file():
        raise MetadataError(f"works file {path} does not exist")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(WORKS_CSV_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise MetadataError(
                f"{path}: works CSV lacks column(s) {', '.join(sorted(missing))}; "
                f"expected: {', '.join(WORKS_CSV_COLUMNS)}"
            )
        rows = list(reader)
    works: dict[tuple[str, str], dict] = {}
    for number, row in enumerate(rows, start=2):
        at = f"{path}: line {number}"
        title = (row.get("work_title") or "").strip()
        if not title:
            raise MetadataError(f"{at}: work_title is empty")
        iswc = (row.get("iswc") or "").strip()
        work = works.setdefault(
            (title, iswc),
            {"title": title, "iswc": iswc, "shares": [], "recordings": {}, "line": number},
        )
        holder = (row.get("holder") or "").strip()
        recording = (row.get("recording_path") or "").strip()
        if not holder and not recording:
            raise MetadataError(f"{at}: a row needs a holder (a share) or a recording_path")
        if holder:
            work["shares"].append(
                {"holder": holder, "ipi": row.get("ipi") or "", "role": row.get("role") or "",
                 "basis_points": row.get("basis_points") or ""}
            )  # fmt: skip
        if recording:
            if recording in work["recordings"]:
                raise MetadataError(f"{at}: '{recording}' is linked to '{title}' twice")
            work["recordings"][recording] = (row.get("link_basis_points") or "").strip() or 10_000
    return tuple(
        _work_entry(
            {k: v for k, v in work.items() if k != "line"}, f"{path}: work at line {work['line']}"
        )
        for work in works.values()
    )


@dataclass(frozen=True)
class MetadataIndex:
    defaults: dict = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)
    works: tuple[WorkEntry, ...] = ()

    def for_file(self, relative_path: str) -> dict:
        """Defaults, overridden by the entry for the file's relative path (or its name)."""
        entry = self.files.get(relative_path) or self.files.get(Path(relative_path).name) or {}
        return {**self.defaults, **entry}


def load_metadata(path: Path | None) -> MetadataIndex:
    if path is None:
        return MetadataIndex()
    path = Path(path)
    if not path.is_file():
        raise MetadataError(f"metadata file {path} does not exist")
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise MetadataError(f"{path}: invalid JSON: {exc}") from exc
        if not isinstance(raw, dict) or set(raw) - {"defaults", "files", "works"}:
            raise MetadataError(
                f"{path}: expected an object with 'defaults', 'files' and/or 'works'"
            )
        works = raw.get("works", [])
        if not isinstance(works, list):
            raise MetadataError(f"{path}: 'works' must be a list of works")
        return MetadataIndex(
            defaults=_clean_entry(raw.get("defaults", {}), f"{path}: defaults"),
            files={
                name: _clean_entry(entry, f"{path}: files[{name}]")
                for name, entry in raw.get("files", {}).items()
            },
            works=tuple(
                _work_entry(work, f"{path}: works[{number}]") for number, work in enumerate(works)
            ),
        )
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if rows and "path" not in rows[0]:
            raise MetadataError(f"{path}: CSV needs a 'path' column")
        files = {}
        for number, row in enumerate(rows, start=2):
            name = row.pop("path")
            files[name] = _clean_entry(row, f"{path}: line {number}")
        return MetadataIndex(files=files)
    raise MetadataError(f"{path}: metadata must be a .json or .csv file")
