"""Read embedded metadata tags (Vorbis comments, ID3, FLAC) with mutagen. Plain module."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import mutagen


@dataclass(frozen=True)
class AudioTags:
    title: str = ""
    artist: str = ""
    album: str = ""
    album_artist: str = ""
    genre: str = ""
    year: int | None = None
    isrc: str = ""


def _first(tags: dict, key: str) -> str:
    values = tags.get(key) or []
    return str(values[0]).strip() if values else ""


def read_tags(path: Path) -> AudioTags:
    """Tags the file carries; missing or unreadable tags give empty fields, never an error
    (whether the audio itself decodes is decided by `decoding.probe_and_verify`)."""
    try:
        parsed = mutagen.File(str(path), easy=True)
    except Exception:  # mutagen raises many format-specific errors
        return AudioTags()
    if parsed is None or not parsed.tags:
        return AudioTags()
    tags = {key.lower(): value for key, value in dict(parsed.tags).items()}
    year_match = re.match(r"^\s*(\d{4})", _first(tags, "date"))
    return AudioTags(
        title=_first(tags, "title"),
        artist=_first(tags, "artist"),
        album=_first(tags, "album"),
        album_artist=_first(tags, "albumartist"),
        genre=_first(tags, "genre"),
        year=int(year_match.group(1)) if year_match else None,
        isrc=_first(tags, "isrc").replace("-", "").upper(),
    )
