"""Payout pages of the rights-holder portal (HTML). Thin: selectors read."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from catalog.selectors import holder_readable_by


@login_required
def holder_payouts(request: HttpRequest, holder_id: int) -> HttpResponse:
    holder = holder_readable_by(user=request.user, holder_id=holder_id)
    return render(request, "royalties/payouts.html", {"holder": holder})
