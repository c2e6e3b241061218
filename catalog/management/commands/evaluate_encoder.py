"""python manage.py evaluate_encoder [NAME@VERSION]: recompute the held-out report of a
default-clap version (default: the active one) on today's training recordings."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from catalog.management.commands.train_encoder import quality_report
from catalog.models import EncoderVersion
from catalog.services.encoders import encoder_evaluate
from config.exceptions import DomainError


class Command(BaseCommand):
    help = (
        "Held-out text->audio and clip->recording recall plus prompt probes of a default-clap "
        "encoder version, computed the same way for every version so they can be compared."
    )

    def add_arguments(self, parser):
        parser.add_argument("version", nargs="?", help="name@version (default: the active one)")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **options):
        wanted = options["version"]
        versions = EncoderVersion.objects.all()
        if wanted:
            name, _, version = wanted.partition("@")
            chosen = versions.filter(name=name, version=version).first()
        else:
            chosen = versions.filter(is_active=True).first()
        if chosen is None:
            known = ", ".join(str(v) for v in versions) or "none"
            raise CommandError(f"no encoder version {wanted or '(active)'}; known: {known}")
        try:
            quality = encoder_evaluate(encoder_version=chosen)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        if options["json"]:
            self.stdout.write(json.dumps(quality, indent=1))
            return
        self.stdout.write(f"{chosen}:")
        self.stdout.write(quality_report(quality))
