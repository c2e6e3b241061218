"""The demo catalogue: freely licensed game soundtracks packaged by Debian.

Artist and title come from the files' tags where they carry them; otherwise from the
package's own metadata (Warzone 2100's album.json) or its Debian copyright file (named in
`credit`). Genre comes from the source: Wesnoth's files are tagged "Romantic Classical";
the others are labelled by what their projects publish. Mood, tempo, mode and the
drums/bass tags are measured from the audio at import (`catalog.audio.descriptors`).
Plain module: no Django imports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from catalog.import_metadata import MetadataIndex


@dataclass(frozen=True)
class DemoSource:
    package: str
    folder: Path
    credit: str
    defaults: dict = field(default_factory=dict)
    skip: tuple[str, ...] = ()

    def metadata(self) -> MetadataIndex:
        files = {name: {"skip": True} for name in self.skip}
        files.update(self._package_metadata())
        return MetadataIndex(defaults=dict(self.defaults), files=files)

    def _package_metadata(self) -> dict[str, dict]:
        """Warzone 2100 describes its Opus files (which carry no tags) in album.json."""
        files: dict[str, dict] = {}
        for album_file in sorted(self.folder.glob("albums/*/album.json")):
            album = json.loads(album_file.read_text(encoding="utf-8"))
            year = str(album.get("date", ""))[:4]
            for track in album.get("tracks", []):
                relative = album_file.parent.relative_to(self.folder) / track["filename"]
                files[str(relative)] = {
                    "title": track.get("title", ""),
                    "artist": track.get("author") or album.get("author", ""),
                    "release": album.get("title", ""),
                    "release_artist": album.get("author", ""),
                    **({"year": int(year)} if year.isdigit() else {}),
                }
        return files


DEMO_SOURCES: tuple[DemoSource, ...] = (
    DemoSource(
        package="wesnoth-1.16-music",
        folder=Path("/usr/share/games/wesnoth/1.16/data/core/music"),
        credit="tags (artist, title, album, date, genre 'Romantic Classical')",
        defaults={"genre": "Classical", "subgenre": "Romantic orchestral"},
        skip=("silence.ogg",),
    ),
    DemoSource(
        package="warzone2100-music",
        folder=Path("/usr/share/games/warzone2100/music"),
        credit="album.json shipped with the music (title, author, album, date)",
        defaults={"genre": "Electronic", "subgenre": "Sci-fi game score"},
    ),
    DemoSource(
        package="singularity-music",
        folder=Path("/usr/share/games/singularity/music"),
        credit="tags (artist Maxstack, title, album, date)",
        defaults={"genre": "Electronic", "subgenre": "Ambient"},
    ),
    DemoSource(
        package="asc-music",
        folder=Path("/usr/share/games/asc/music"),
        credit="Debian copyright: 2002 Michael Kievernagel",
        defaults={
            "artist": "Michael Kievernagel",
            "release": "Advanced Strategic Command",
            "year": 2002,
            "genre": "Soundtrack",
            "subgenre": "Strategy game score",
        },
    ),
    DemoSource(
        package="pushover-data",
        folder=Path("/usr/share/pushover/themes"),
        credit="Debian copyright: Roberto Lorenz (music composition and arrangement)",
        defaults={
            "artist": "Roberto Lorenz",
            "release": "Pushover",
            "year": 2008,
            "genre": "Soundtrack",
            "subgenre": "Puzzle game themes",
        },
    ),
)


def missing_packages() -> list[str]:
    return [source.package for source in DEMO_SOURCES if not source.folder.is_dir()]
