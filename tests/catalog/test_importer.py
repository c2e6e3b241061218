"""Importing real and corrupt files: idempotent; corrupt files reported, nothing half-imported."""

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from catalog.demo.sources import DemoSource
from catalog.import_metadata import MetadataError, load_metadata
from catalog.models import Artist, Recording, Release
from catalog.services.importing import analysis_pool, catalogue_import_folder
from tests.conftest import REAL_MP3, REAL_OGG, excerpt_of, require_real_audio

pytestmark = pytest.mark.django_db


@pytest.fixture
def folder(tmp_path):
    """Real music in four containers, plus a truncated Ogg and a text file posing as audio."""
    require_real_audio(REAL_OGG, REAL_MP3)
    root = tmp_path / "incoming"
    (root / "sub").mkdir(parents=True)
    (root / "electro.ogg").write_bytes(REAL_OGG.read_bytes())
    excerpt_of(REAL_MP3, root / "sub" / "machine.flac", seconds=6, offset=60)
    excerpt_of(REAL_OGG, root / "sub" / "bridge.wav", seconds=6, offset=90)
    (root / "broken.ogg").write_bytes(REAL_OGG.read_bytes()[:300_000])
    (root / "liner-notes.mp3").write_text("not audio at all\n" * 100)
    (root / "cover.txt").write_text("ignored: not an audio suffix")
    return root


def stored_files(settings) -> list[Path]:
    media = Path(settings.MEDIA_ROOT)
    return sorted(p for p in media.rglob("*") if p.is_file()) if media.exists() else []


def test_import_folder_imports_good_files_and_reports_bad_ones(folder, settings):
    outcomes = catalogue_import_folder(
        folder=folder, metadata=load_metadata(None), analysis_seconds=5
    )
    by_name = {o.path.name: o for o in outcomes}
    assert {n: o.status for n, o in by_name.items()} == {
        "electro.ogg": "imported",
        "machine.flac": "imported",
        "bridge.wav": "imported",
        "broken.ogg": "failed",
        "liner-notes.mp3": "failed",
    }
    assert "truncated" in by_name["broken.ogg"].message
    assert "cannot decode" in by_name["liner-notes.mp3"].message
    assert Recording.objects.count() == 3
    assert len(stored_files(settings)) == 3  # nothing stored for the failures

    electro = Recording.objects.get(source_filename__endswith="electro.ogg")
    assert electro.title == "Electro"  # no title tag: from the file name
    assert electro.audio_format == "ogg" and electro.duration_seconds == pytest.approx(
        141.6, abs=0.2
    )
    assert electro.tempo_bpm and electro.mode in {"major", "minor"} and electro.moods
    assert Path(electro.audio_file.path).read_bytes() == REAL_OGG.read_bytes()


def test_import_is_idempotent_by_content_hash(folder):
    catalogue_import_folder(folder=folder, metadata=load_metadata(None), analysis_seconds=5)
    (folder / "copy-of-electro.ogg").write_bytes(REAL_OGG.read_bytes())
    again = catalogue_import_folder(folder=folder, metadata=load_metadata(None), analysis_seconds=5)
    statuses = {o.path.name: o.status for o in again}
    assert statuses["electro.ogg"] == statuses["copy-of-electro.ogg"] == "duplicate"
    assert Recording.objects.count() == 3


def test_metadata_file_overrides_tags_and_adds_curated_tags(folder, tmp_path):
    metadata = tmp_path / "meta.json"
    metadata.write_text(json.dumps({
        "defaults": {"genre": "Electronic", "artist": "Roberto Lorenz", "release": "Pushover"},
        "files": {
            "electro.ogg": {
                "title": "Electro Theme", "isrc": "DEA620800001",
                "moods": ["Playful"], "year": 2008,
            },
            "sub/bridge.wav": {"skip": True},
        },
    }))  # fmt: skip
    outcomes = catalogue_import_folder(
        folder=folder, metadata=load_metadata(metadata), analysis_seconds=5
    )
    assert {o.path.name: o.status for o in outcomes}["bridge.wav"] == "skipped"
    electro = Recording.objects.get(title="Electro Theme")
    assert (electro.isrc, electro.year, electro.genre) == ("DEA620800001", 2008, "Electronic")
    assert electro.artist.name == "Roberto Lorenz" and electro.release.title == "Pushover"
    assert "playful" in electro.moods


def test_invalid_isrc_in_metadata_fails_that_file_and_stores_nothing(folder, tmp_path, settings):
    metadata = tmp_path / "meta.csv"
    metadata.write_text("path,isrc\nelectro.ogg,NOT-AN-ISRC\n")
    outcomes = catalogue_import_folder(
        folder=folder, metadata=load_metadata(metadata), analysis_seconds=5
    )
    electro = next(o for o in outcomes if o.path.name == "electro.ogg")
    assert electro.status == "failed" and "isrc" in electro.message.lower()
    assert not Recording.objects.filter(source_filename__endswith="electro.ogg").exists()
    assert len(stored_files(settings)) == 2


def test_command_reports_failures_by_name_and_exits_non_zero(folder, capsys):
    with pytest.raises(CommandError) as failure:
        call_command("import_catalogue", str(folder), "--jobs", "1")
    assert failure.value.returncode == 1
    err = capsys.readouterr().err
    assert "broken.ogg" in err and "liner-notes.mp3" in err
    assert Recording.objects.count() == 3


def test_command_refuses_bad_metadata_before_importing_anything(folder, tmp_path):
    metadata = tmp_path / "meta.json"
    metadata.write_text(json.dumps({"files": {"electro.ogg": {"tempo": 120}}}))
    with pytest.raises(CommandError, match="unknown field"):
        call_command("import_catalogue", str(folder), "--metadata", str(metadata))
    with pytest.raises(CommandError, match="not a folder"):
        call_command("import_catalogue", str(tmp_path / "nowhere"))
    assert not Recording.objects.exists() and not Artist.objects.exists()


def test_parallel_analysis_gives_the_same_result(folder):
    outcomes = catalogue_import_folder(
        folder=folder, metadata=load_metadata(None), analysis_seconds=5, jobs=2
    )
    assert sorted(o.status for o in outcomes) == [
        "failed",
        "failed",
        "imported",
        "imported",
        "imported",
    ]


def test_a_shared_pool_serves_several_folders(folder, tmp_path):
    second = tmp_path / "second"
    second.mkdir()
    excerpt_of(REAL_OGG, second / "coda.flac", seconds=5, offset=120)
    with analysis_pool(2) as pool:
        first = catalogue_import_folder(
            folder=folder, metadata=load_metadata(None), analysis_seconds=5, pool=pool
        )
        other = catalogue_import_folder(
            folder=second, metadata=load_metadata(None), analysis_seconds=5, pool=pool
        )
    assert [o.status for o in other] == ["imported"]
    assert sum(o.status == "imported" for o in first) == 3
    assert Recording.objects.count() == 4


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('{"files": {"a.ogg": {"year": "soon"}}}', "year must be a number"),
        ("[1, 2]", "expected an object"),
    ],
)
def test_metadata_errors_are_clear(tmp_path, content, fragment):
    path = tmp_path / "meta.json"
    path.write_text(content)
    with pytest.raises(MetadataError, match=fragment):
        load_metadata(path)


def test_demo_source_reads_album_json(tmp_path):
    album = tmp_path / "albums" / "ost"
    album.mkdir(parents=True)
    (album / "album.json").write_text(json.dumps({
        "title": "Warzone 2100 OST", "author": "Martin Severn", "date": "1999",
        "tracks": [{"filename": "track1.opus", "title": "Menu", "author": "Martin Severn"}],
    }))  # fmt: skip
    source = DemoSource(package="p", folder=tmp_path, credit="", defaults={"genre": "Electronic"})
    entry = source.metadata().for_file("albums/ost/track1.opus")
    assert entry == {
        "genre": "Electronic", "title": "Menu", "artist": "Martin Severn",
        "release": "Warzone 2100 OST", "release_artist": "Martin Severn", "year": 1999,
    }  # fmt: skip
    assert not Release.objects.exists()


def test_a_worker_crash_fails_only_what_it_took_down(tmp_path, monkeypatch, caplog):
    require_real_audio(REAL_OGG)
    from tests.catalog import crashing_analysis

    root = tmp_path / "incoming"
    root.mkdir()
    excerpt_of(REAL_OGG, root / "a-first.wav", seconds=4, offset=10)
    excerpt_of(REAL_OGG, root / "crash.wav", seconds=4, offset=30)
    monkeypatch.setattr(
        "catalog.services.importing.analyse_file_or_error", crashing_analysis.analyse_or_die
    )

    outcomes = catalogue_import_folder(
        folder=root, metadata=load_metadata(None), analysis_seconds=4, jobs=2
    )

    by_name = {o.path.name: o for o in outcomes}
    assert by_name["crash.wav"].status == "failed"
    assert "crashed twice" in by_name["crash.wav"].message
    assert not Recording.objects.filter(source_filename__endswith="crash.wav").exists()
    assert "retrying the rest" in caplog.text
