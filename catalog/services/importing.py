"""Import audio files into the catalogue.

Each file is decoded completely, fingerprinted and described in worker processes; the
database write happens here, one transaction per file, so a failure leaves nothing behind.
Importing is idempotent by content hash: a file already in the catalogue is not analysed again.

Rights signals come in with a file: an IPTC/PLUS Data Mining value or a TDMRep reservation in
its embedded XMP (`catalog.audio.xmp`), or `tdm_reservation` in the metadata file. A
reservation is recorded with the recording, in its transaction
(`catalog.services.reservations`); a file whose XMP cannot be parsed fails by name before its
audio is analysed, and nothing of it is imported.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction

from catalog.audio.analysis import AudioAnalysis, analyse_file_or_error
from catalog.audio.analysis_workers import prepare_analysis_worker
from catalog.audio.decoding import SUPPORTED_SUFFIXES, file_sha256
from catalog.audio.xmp import XmpError, read_embedded_rights
from catalog.consent_signals import Reservation, reservations_from
from catalog.import_metadata import MetadataIndex
from catalog.models import Artist, Recording, Release
from catalog.services.reservations import reservations_record
from config.exceptions import InvalidInput

UNKNOWN_ARTIST = "Unknown artist"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportOutcome:
    path: Path
    status: str  # "imported" | "duplicate" | "skipped" | "failed"
    recording_id: int | None = None
    message: str = ""


def audio_files_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
    )


def _title_from_filename(path: Path) -> str:
    return re.sub(r"[_\-]+", " ", path.stem).strip().title() or path.name


def file_reservations(path: Path, metadata: dict) -> list[Reservation]:
    """The reservations a file comes with (its XMP, its metadata entry). Raises InvalidInput
    naming the problem when its XMP cannot be parsed or holds an unknown value."""
    try:
        embedded = read_embedded_rights(path)
        return reservations_from(
            data_mining=embedded.data_mining,
            xmp_tdm_reservation=embedded.tdm_reservation,
            xmp_tdm_policy=embedded.tdm_policy,
            metadata_tdm_reservation=metadata.get("tdm_reservation"),
            metadata_tdm_policy=metadata.get("tdm_policy", ""),
        )
    except (XmpError, ValueError) as exc:
        raise InvalidInput(f"{path.name}: its XMP metadata cannot be used: {exc}") from exc
    except OSError as exc:
        raise InvalidInput(f"{path.name}: cannot read its XMP metadata: {exc}") from exc


def recording_create_from_analysis(
    *,
    analysis: AudioAnalysis,
    metadata: dict,
    source: str = "",
    reservations: list[Reservation] | None = None,
) -> tuple[Recording, bool]:
    """Create the recording described by `analysis`, curated `metadata` taking precedence
    over the file's tags, with the `reservations` it came with (default: read from the file
    and `metadata`). Returns (recording, created); an existing hash is not re-imported."""
    existing = Recording.objects.filter(content_sha256=analysis.sha256).first()
    if existing is not None:
        return existing, False
    tags, descriptors = analysis.tags, analysis.descriptors
    artist_name = metadata.get("artist") or tags.artist or UNKNOWN_ARTIST
    release_title = metadata.get("release") or tags.album
    release_artist_name = metadata.get("release_artist") or tags.album_artist or artist_name
    year = metadata.get("year") or tags.year
    recording = Recording(
        title=metadata.get("title") or tags.title or _title_from_filename(analysis.path),
        isrc=(metadata.get("isrc") or tags.isrc or None),
        duration_seconds=round(analysis.probe.duration_seconds, 3),
        audio_format=analysis.probe.audio_format,
        sample_rate=analysis.probe.sample_rate,
        channels=analysis.probe.channels,
        content_sha256=analysis.sha256,
        genre=metadata.get("genre") or tags.genre,
        subgenre=metadata.get("subgenre", ""),
        year=year,
        country=metadata.get("country", "").upper(),
        instruments=sorted(set(descriptors.instruments) | set(metadata.get("instruments", []))),
        moods=sorted(set(descriptors.moods) | set(metadata.get("moods", []))),
        tempo_bpm=descriptors.tempo_bpm,
        musical_key=descriptors.key,
        mode=descriptors.mode,
        descriptors=descriptors.as_dict(),
        source=source,
        source_filename=str(analysis.path),
    )
    if recording.country and not re.fullmatch(r"[A-Z]{2}", recording.country):
        raise InvalidInput(f"country must be an ISO 3166-1 alpha-2 code, got '{recording.country}'")
    if reservations is None:
        reservations = file_reservations(analysis.path, metadata)

    with transaction.atomic():
        artist, _ = Artist.objects.get_or_create(name=artist_name)
        recording.artist = artist
        if release_title:
            release_artist, _ = Artist.objects.get_or_create(name=release_artist_name)
            recording.release, _ = Release.objects.get_or_create(
                title=release_title, artist=release_artist, defaults={"year": year}
            )
        try:
            recording.full_clean(exclude=["audio_file", "artist", "release"])
        except ValidationError as exc:
            raise InvalidInput(
                f"{analysis.path.name}: invalid metadata", details=exc.message_dict
            ) from exc
        with open(analysis.path, "rb") as handle:
            recording.audio_file.save(analysis.path.name, File(handle), save=False)
        try:
            recording.save()
            reservations_record(recording=recording, reservations=reservations)
        except Exception:
            recording.audio_file.delete(save=False)
            raise
    return recording, True


def catalogue_import_folder(
    *,
    folder: Path,
    metadata: MetadataIndex,
    source: str = "",
    analysis_seconds: float = 60.0,
    jobs: int = 1,
    on_progress: Callable[[ImportOutcome], None] | None = None,
    pool: Executor | None = None,
) -> list[ImportOutcome]:
    """Import every audio file under `folder`. Analysis runs in `jobs` processes, or in
    `pool` when given (callers importing several folders share one warmed-up pool)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder")
    outcomes: list[ImportOutcome] = []

    def record(outcome: ImportOutcome) -> None:
        outcomes.append(outcome)
        if on_progress:
            on_progress(outcome)

    pending: list[tuple[Path, dict, list[Reservation]]] = []
    seen_hashes: set[str] = set()
    for path in audio_files_in(folder):
        entry = metadata.for_file(str(path.relative_to(folder)))
        if entry.get("skip"):
            record(ImportOutcome(path, "skipped", message="skipped by metadata"))
            continue
        try:
            digest = file_sha256(path)
        except OSError as exc:
            record(ImportOutcome(path, "failed", message=f"cannot read file: {exc}"))
            continue
        existing = Recording.objects.filter(content_sha256=digest).values_list("pk", flat=True)
        if existing or digest in seen_hashes:
            record(
                ImportOutcome(path, "duplicate", existing[0] if existing else None, "same audio")
            )
            continue
        try:
            reservations = file_reservations(path, entry)
        except InvalidInput as exc:
            record(ImportOutcome(path, "failed", message=exc.message))
            continue
        seen_hashes.add(digest)
        pending.append((path, entry, reservations))

    paths = [p for p, _, _ in pending]
    results = _analyse_all(paths, analysis_seconds, jobs, pool)
    for (path, entry, reservations), result in zip(pending, results, strict=True):
        if isinstance(result, Exception):
            record(ImportOutcome(path, "failed", message=str(result)))
            continue
        try:
            recording, created = recording_create_from_analysis(
                analysis=result, metadata=entry, source=source, reservations=reservations
            )
        except InvalidInput as exc:
            detail = f" {exc.details}" if exc.details else ""
            record(ImportOutcome(path, "failed", message=f"{exc.message}{detail}"))
            continue
        record(ImportOutcome(path, "imported" if created else "duplicate", recording.pk))
    return outcomes


def analysis_pool(jobs: int) -> ProcessPoolExecutor:
    """Worker processes for audio analysis. spawn: workers must not inherit this process's
    database connections; each warms up its numba kernels (`analysis_workers`)."""
    return ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=prepare_analysis_worker,
        initargs=(str(Path(settings.STATE_DIR) / "cache" / "numba-analysis-workers"),),
    )


def _analyse_all(
    paths: list[Path], seconds: float, jobs: int, pool: Executor | None = None
) -> Iterator[AudioAnalysis | Exception]:
    """Results in the order of `paths`. A worker that dies (a native decoder crashing on a
    hostile file) breaks its pool; the files not yet analysed are retried once in fresh
    workers, and reported as failed if that pool breaks too, so one file cannot stop an
    import."""
    work = [(path, seconds) for path in paths]
    if pool is None and (jobs <= 1 or len(work) <= 1):
        yield from map(analyse_file_or_error, work)
        return
    done = 0
    for attempt in range(2):
        try:
            if pool is not None and attempt == 0:
                for result in pool.map(analyse_file_or_error, work):
                    done += 1
                    yield result
            else:
                with analysis_pool(max(jobs, 2)) as fresh:
                    for result in fresh.map(analyse_file_or_error, work[done:]):
                        done += 1
                        yield result
            return
        except BrokenProcessPool:
            logger.warning(
                "an audio analysis worker died after %d of %d files; %s",
                done,
                len(work),
                "retrying the rest in new workers" if attempt == 0 else "giving up on the rest",
            )
    for path, _ in work[done:]:
        yield AnalysisWorkerCrashed(
            f"{path.name}: the analysis worker crashed twice on this file or one analysed "
            "beside it; re-import it alone to find out which"
        )


class AnalysisWorkerCrashed(Exception):
    """A worker process died while analysing; the file's audio was not judged."""
