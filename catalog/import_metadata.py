"""Curated metadata for an import: a JSON or CSV file that adds or overrides what the audio
files' own tags say. Plain module.

JSON::

    {"defaults": {"genre": "Electronic", "release": "OST"},
     "files": {"sub/track1.ogg": {"title": "Opening", "moods": ["calm"]}}}

CSV: a `path` column (relative to the imported folder) plus any of the fields below;
list fields are separated by `;`. A file entry may set `"skip": true` to leave a file out.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

TEXT_FIELDS = frozenset(
    {"title", "artist", "release", "release_artist", "genre", "subgenre", "country", "isrc"}
)
LIST_FIELDS = frozenset({"instruments", "moods"})
ALL_FIELDS = TEXT_FIELDS | LIST_FIELDS | {"year", "skip"}


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
        else:
            cleaned[key] = str(value).strip()
    return cleaned


@dataclass(frozen=True)
class MetadataIndex:
    defaults: dict = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)

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
        if not isinstance(raw, dict) or set(raw) - {"defaults", "files"}:
            raise MetadataError(f"{path}: expected an object with 'defaults' and/or 'files'")
        return MetadataIndex(
            defaults=_clean_entry(raw.get("defaults", {}), f"{path}: defaults"),
            files={
                name: _clean_entry(entry, f"{path}: files[{name}]")
                for name, entry in raw.get("files", {}).items()
            },
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
