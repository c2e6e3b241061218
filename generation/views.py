"""The song-selection studio (HTML pages). The pages are rendered here; their script
(`static/generation/studio.js`) talks to the same REST API any client uses, so the page
and the API cannot disagree about verification, progress or attribution."""

from __future__ import annotations

import json
import re
from pathlib import Path

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from catalog import training_summary
from catalog.models import Distribution, Level
from catalog.retrieval.selectors import category_vocabulary
from generation import providers, selectors
from generation.model import ROLES
from generation.services.requests import model_limits

# One line each, in the words of seed 004 (Table 1 levels, Table 2 distributions).
LEVEL_HELP = {
    Level.SONG: "the song's overall character steers the output",
    Level.PARAMETER: "one aspect of the song (its role: mood, instrument, timbre...) steers it",
    Level.AUDIO: "your uploaded track is transformed towards this reference",
    Level.TEMPORAL: "only a segment of your uploaded track is regenerated",
}
DISTRIBUTION_HELP = {
    Distribution.PRIVATE: "only you will listen to it",
    Distribution.NON_COMMERCIAL: "shared publicly, earning nothing",
    Distribution.COMMERCIAL: "released, licensed or used to earn money",
}


@login_required
def studio(request: HttpRequest) -> HttpResponse:
    """Find references (prompt, search, browse), build the selection, verify and submit."""
    try:
        model_version = selectors.servable_model_version()
    except selectors.NoServableModel as exc:
        model_version, model_problem = None, exc.message
    else:
        model_problem = ""
    limits = model_limits(model_version) if model_version else None
    context = {
        "vocabulary": category_vocabulary(),
        "levels": [(level, Level(level).label, LEVEL_HELP[level]) for level in Level.values],
        "distributions": [
            (d, Distribution(d).label, DISTRIBUTION_HELP[d]) for d in Distribution.values
        ],
        "roles": ROLES,
        "model_version": model_version,
        "model_problem": model_problem,
        "max_seconds": limits.sampler.max_output_seconds if limits else 60.0,
        "context_seconds": limits.dit.max_seconds if limits else 10.0,
        "min_seconds": settings.GENERATION_MIN_SECONDS,
        "max_references": limits.dit.max_references if limits else 8,
    }
    return render(request, "generation/studio.html", context)


@login_required
def generation_list(request: HttpRequest) -> HttpResponse:
    generations = selectors.generations_visible_to(user=request.user).order_by("-created_at")
    return render(request, "generation/generations.html", {"generations": generations[:100]})


@login_required
def generation_receipt(request: HttpRequest, uid) -> HttpResponse:
    """The attribution receipt: references and who they pay (certain, from the log), then the
    output, its training-time attribution and audit as they become available."""
    generation = selectors.generation_get_for(user=request.user, uid=uid)
    context = {
        "generation": generation,
        "references": selectors.generation_receipt_references(generation=generation),
        "disputes": providers.generation_disputes(generation_ref=generation.ref, user=request.user),
    }
    return render(request, "generation/receipt.html", context)


SAMPLE_FILE = re.compile(r"^[a-z0-9-]+\.(wav|png)$")


@staff_member_required
def generator_quality(request: HttpRequest) -> HttpResponse:
    """Each model version's `evaluate_generator` report: the metric table (real audio, the
    resynthesis ceiling, baseline and model) and listening samples beside their references."""
    evaluated = selectors.model_versions_evaluated()
    return render(request, "generation/quality.html", {"evaluated": evaluated})


@staff_member_required
def generator_quality_file(request: HttpRequest, model_version_id: int, name: str):
    """A listening sample's WAV or spectrogram sheet (written by `evaluate_generator`)."""
    if not SAMPLE_FILE.match(name):
        raise Http404("no such sample file")
    path = Path(settings.MEDIA_ROOT) / "quality" / str(model_version_id) / name
    if not path.is_file():
        raise Http404("no such sample file")
    kind = "audio/wav" if name.endswith(".wav") else "image/png"
    return FileResponse(path.open("rb"), content_type=kind)


@staff_member_required
def training_summaries(request: HttpRequest) -> HttpResponse:
    """Every generator and encoder version, each with its training-content summary."""
    return render(
        request,
        "generation/training_summaries.html",
        {
            "generators": selectors.model_versions_all(),
            "encoders": training_summary.encoder_versions_all(),
        },
    )


@staff_member_required
def training_summary_document(
    request: HttpRequest, kind: str, version_id: int, fmt: str
) -> HttpResponse:
    """A module's training-content summary as HTML or JSON; ``?download=1`` (and always for
    JSON) serves it as a file to keep or publish."""
    if kind == "generator":
        version = selectors.model_version_get(model_version_id=version_id)
        summary = selectors.model_version_training_summary(model_version=version)
    elif kind == "encoder":
        version = training_summary.encoder_version_get(encoder_version_id=version_id)
        summary = training_summary.encoder_training_summary(encoder_version=version)
    else:
        raise Http404("no such kind of module")
    if fmt == "json":
        response = HttpResponse(
            json.dumps(summary, indent=2, ensure_ascii=False), content_type="application/json"
        )
        download = True
    elif fmt == "html":
        response = render(
            request, "generation/training_summary.html", {"summary": summary, "kind": kind}
        )
        download = bool(request.GET.get("download"))
    else:
        raise Http404("a summary is .html or .json")
    if download:
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"training-summary-{kind}-{version}")
        response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response
