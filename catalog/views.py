"""Rights-holder consent portal (HTML pages). Thin: selectors read, services write."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from catalog import selectors


@login_required
def portal_home(request: HttpRequest) -> HttpResponse:
    """The holders the user acts for."""
    holders = selectors.user_holders(user=request.user)
    return render(request, "catalog/portal/home.html", {"holders": holders})
