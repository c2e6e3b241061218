"""python manage.py import_catalogue PATH [--metadata FILE] [--works-csv FILE] [--staff USER]
[--source NAME] [--jobs N]"""

from collections import Counter
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.import_metadata import MetadataError, load_metadata, load_works_csv
from catalog.models import EncoderVersion
from catalog.services.importing import audio_files_in, catalogue_import_folder
from catalog.services.works_import import works_import_apply, works_import_check
from catalog.tasks import recording_embed
from config.exceptions import DomainError


class Command(BaseCommand):
    help = (
        "Import a folder of audio (Ogg Vorbis/Opus, FLAC, WAV, MP3) into the catalogue. "
        "Idempotent by content hash. Corrupt files are reported and skipped; the exit status "
        "is 1 when any file failed. Musical works in the metadata (or --works-csv) are "
        "checked before anything is imported and registered afterwards as --staff."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--metadata", type=Path, help="JSON or CSV with curated fields")
        parser.add_argument(
            "--works-csv",
            type=Path,
            help="CSV of musical works: work_title, iswc, holder, ipi, role, basis_points, "
            "recording_path, link_basis_points (README: Importing your own catalogue)",
        )
        parser.add_argument(
            "--staff", default="", help="staff username that registers the works (with works)"
        )
        parser.add_argument("--source", default="", help="where the files come from")
        parser.add_argument("--jobs", type=int, default=2, help="analysis processes")

    def handle(
        self,
        *args,
        path: Path,
        metadata: Path | None,
        works_csv: Path | None,
        staff: str,
        source: str,
        jobs: int,
        **opts,
    ):
        if not path.is_dir():
            raise CommandError(f"{path} is not a folder")
        plan = actor = None
        try:
            index = load_metadata(metadata)
            works = index.works + (load_works_csv(works_csv) if works_csv else ())
            if works:
                actor = get_user_model().objects.filter(username=staff, is_staff=True).first()
                if actor is None:
                    raise CommandError(
                        "the metadata names musical works: give --staff USERNAME of a staff "
                        "user (the rights team registers works)"
                    )
                plan = works_import_check(works=works, folder=path, metadata=index)
        except MetadataError as exc:
            raise CommandError(str(exc)) from exc

        total = len(audio_files_in(path))
        self.stdout.write(f"Importing {total} audio file(s) from {path}")
        with tqdm(total=total, unit="file", disable=total == 0) as bar:

            def progress(outcome):
                bar.update(1)
                bar.set_postfix_str(f"{outcome.status}: {outcome.path.name}"[:60])

            try:
                outcomes = catalogue_import_folder(
                    folder=path,
                    metadata=index,
                    source=source or str(path),
                    analysis_seconds=settings.CATALOG_ANALYSIS_SECONDS,
                    jobs=max(1, jobs),
                    on_progress=progress,
                )
            except DomainError as exc:
                raise CommandError(exc.message) from exc

        counts = Counter(o.status for o in outcomes)
        self.stdout.write(
            f"Imported {counts['imported']}, already in catalogue {counts['duplicate']}, "
            f"skipped {counts['skipped']}, failed {counts['failed']}."
        )
        if plan is not None:
            try:
                result = works_import_apply(actor=actor, plan=plan, folder=path, outcomes=outcomes)
            except DomainError as exc:
                raise CommandError(f"works not registered: {exc.message}") from exc
            self.stdout.write(
                f"Works: {result.works_created} registered, {result.works_updated} with new "
                f"shares, {result.holders_created} rights holder(s) created, "
                f"{result.recordings_linked} recording(s) linked."
            )
            for relative in result.not_imported:
                self.stderr.write(f"  NOT LINKED {relative}: the file was not imported")
        imported = [o.recording_id for o in outcomes if o.status == "imported"]
        if imported and EncoderVersion.objects.filter(is_active=True).exists():
            for recording_id in imported:
                recording_embed.delay(recording_id)
            self.stdout.write(
                f"Queued {len(imported)} embedding job(s) for the active encoder (Celery, cpu "
                "queue); `manage.py embed_catalogue` does the same synchronously."
            )
        failed = [o for o in outcomes if o.status == "failed"]
        for outcome in failed:
            self.stderr.write(f"  FAILED {outcome.path}: {outcome.message}")
        if failed:
            raise CommandError(f"{len(failed)} file(s) could not be imported", returncode=1)
