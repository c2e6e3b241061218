"""python manage.py measure_conditioning: is the reference conditioning audible?"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from catalog.retrieval.runtime import loaded_encoder
from config.exceptions import DomainError
from generation.evaluation import measure_conditioning
from generation.selectors import active_model_version, permitted_track_vectors
from generation.services.models import model_version_record_quality
from generation.services.running import loaded_generator


class Command(BaseCommand):
    help = (
        "Generate from random pairs of catalogue references and report the mean CLAP "
        "similarity of each output to its references versus to random other recordings."
    )

    def add_arguments(self, parser):
        parser.add_argument("--generations", type=int, default=20)
        parser.add_argument("--references", type=int, default=2, help="per generation")
        parser.add_argument("--others", type=int, default=10, help="random others per generation")
        parser.add_argument("--seconds", type=float, default=10.0)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options):
        if options["generations"] < 1:
            raise CommandError("--generations must be at least 1")
        try:
            model_version = active_model_version()
            generator = loaded_generator(model_version)
            encoder = loaded_encoder(model_version.encoder)
        except (DomainError, Exception) as exc:
            raise CommandError(getattr(exc, "message", str(exc))) from exc
        track_vectors = permitted_track_vectors(encoder_version=model_version.encoder)
        self.stdout.write(
            f"Model {model_version}, encoder {model_version.encoder}: "
            f"{options['generations']} generations of {options['seconds']} s from "
            f"{len(track_vectors)} recordings permitted for song-level inference"
        )
        self.stdout.write(f"{'#':>3}  {'references':<14} {'sim refs':>9} {'sim others':>10}")

        def on_trial(n, trial):
            refs = ",".join(map(str, trial.reference_ids))
            self.stdout.write(
                f"{n + 1:>3}  {refs:<14} {trial.similarity_to_references:>9.4f} "
                f"{trial.similarity_to_others:>10.4f}"
            )

        try:
            report = measure_conditioning(
                generator=generator,
                encoder=encoder,
                track_vectors=track_vectors,
                generations=options["generations"],
                references_per_generation=options["references"],
                others_per_generation=options["others"],
                seconds=options["seconds"],
                seed=options["seed"],
                on_trial=on_trial,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        summary = report.to_dict()
        self.stdout.write(
            f"mean CLAP similarity to own references {summary['mean_similarity_to_references']:.4f}"
            f" vs to random others {summary['mean_similarity_to_random_others']:.4f}; "
            f"{summary['closer_to_references']}/{summary['generations']} outputs closer to their "
            f"references; paired t = {summary['paired_t']}"
        )
        model_version_record_quality(model_version=model_version, quality={"conditioning": summary})
