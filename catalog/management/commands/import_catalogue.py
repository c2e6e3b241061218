"""python manage.py import_catalogue PATH [--metadata FILE] [--source NAME] [--jobs N]"""

from collections import Counter
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.import_metadata import MetadataError, load_metadata
from catalog.models import EncoderVersion
from catalog.services.importing import audio_files_in, catalogue_import_folder
from catalog.tasks import recording_embed
from config.exceptions import DomainError


class Command(BaseCommand):
    help = (
        "Import a folder of audio (Ogg Vorbis/Opus, FLAC, WAV, MP3) into the catalogue. "
        "Idempotent by content hash. Corrupt files are reported and skipped; the exit status "
        "is 1 when any file failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--metadata", type=Path, help="JSON or CSV with curated fields")
        parser.add_argument("--source", default="", help="where the files come from")
        parser.add_argument("--jobs", type=int, default=2, help="analysis processes")

    def handle(self, *args, path: Path, metadata: Path | None, source: str, jobs: int, **opts):
        if not path.is_dir():
            raise CommandError(f"{path} is not a folder")
        try:
            index = load_metadata(metadata)
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
