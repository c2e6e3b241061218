"""python manage.py demo_setup: import the demo catalogue, seed rights/consent, create accounts.

Fast when repeated: files already in the catalogue are recognised by hash and not analysed.
Then runs the other apps' demo steps named in settings.DEMO_SETUP_STEPS (royalties: the
demo price list and fee split), so that the catalogue imports none of them.
"""

from collections import Counter

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string
from tqdm import tqdm

from catalog.demo.seed import DEMO_ACCOUNTS, demo_rights_seed
from catalog.demo.sources import DEMO_SOURCES, missing_packages
from catalog.models import Artist, Recording
from catalog.services.importing import analysis_pool, audio_files_in, catalogue_import_folder


class Command(BaseCommand):
    help = "Set up the demo catalogue (Debian game-soundtrack packages), rights, consent, accounts."

    def add_arguments(self, parser):
        parser.add_argument("--jobs", type=int, default=2, help="analysis processes")

    def handle(self, *args, jobs: int, **options):
        missing = missing_packages()
        if missing:
            raise CommandError(
                "demo music packages are not installed: "
                f"apt-get install -y --no-install-recommends {' '.join(missing)}"
            )
        counts: Counter = Counter()
        with analysis_pool(max(1, jobs)) as pool:  # one warm-up for all sources
            for source in DEMO_SOURCES:
                files = audio_files_in(source.folder)
                with tqdm(total=len(files), unit="file", desc=source.package) as bar:
                    outcomes = catalogue_import_folder(
                        folder=source.folder,
                        metadata=source.metadata(),
                        source=f"debian:{source.package}",
                        analysis_seconds=settings.CATALOG_ANALYSIS_SECONDS,
                        on_progress=lambda _outcome, bar=bar: bar.update(1),
                        pool=pool,
                    )
                counts.update(o.status for o in outcomes)
                for outcome in outcomes:
                    if outcome.status == "failed":
                        self.stderr.write(f"  FAILED {outcome.path}: {outcome.message}")
        seeded = demo_rights_seed()

        genres = Recording.objects.values("genre").distinct().count()
        self.stdout.write(
            f"Demo catalogue: {Recording.objects.count()} recordings by "
            f"{Artist.objects.filter(recordings__isnull=False).distinct().count()} artists "
            f"in {genres} genres (imported now {counts['imported']}, already present "
            f"{counts['duplicate']}, skipped {counts['skipped']}, failed {counts['failed']}); "
            f"rights set on {seeded['recordings']} recordings, works on {seeded['works']}, "
            f"{seeded['consent_versions']} consent versions written."
        )
        staff = get_user_model().objects.get(username="staff")
        for path in settings.DEMO_SETUP_STEPS:  # the other apps' demo data (royalties: prices)
            self.stdout.write(import_string(path)(staff=staff))
        self.stdout.write("Demo accounts:")
        for account in DEMO_ACCOUNTS:
            self.stdout.write(f"  {account.username:8} / {account.password:18} {account.role}")
