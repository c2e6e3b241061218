"""The song-selection studio (HTML pages); the page script talks to the REST API."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from generation import selectors


@login_required
def studio(request: HttpRequest) -> HttpResponse:
    return render(request, "generation/studio.html")


@login_required
def generation_list(request: HttpRequest) -> HttpResponse:
    generations = selectors.generations_visible_to(user=request.user)[:100]
    return render(request, "generation/generations.html", {"generations": generations})


@login_required
def generation_receipt(request: HttpRequest, uid) -> HttpResponse:
    generation = selectors.generation_get_for(user=request.user, uid=uid)
    return render(request, "generation/receipt.html", {"generation": generation})
