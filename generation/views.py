"""The song-selection studio (HTML pages). The pages are rendered here; their script
(`static/generation/studio.js`) talks to the same REST API any client uses, so the page
and the API cannot disagree about verification, progress or attribution."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from catalog.models import Distribution, Level
from catalog.retrieval.selectors import category_vocabulary
from generation import selectors
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
    limits = model_limits(model_version).dit if model_version else None
    context = {
        "vocabulary": category_vocabulary(),
        "levels": [(level, Level(level).label, LEVEL_HELP[level]) for level in Level.values],
        "distributions": [
            (d, Distribution(d).label, DISTRIBUTION_HELP[d]) for d in Distribution.values
        ],
        "roles": ROLES,
        "model_version": model_version,
        "model_problem": model_problem,
        "max_seconds": limits.max_seconds if limits else 10.0,
        "max_references": limits.max_references if limits else 8,
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
    }
    return render(request, "generation/receipt.html", context)
