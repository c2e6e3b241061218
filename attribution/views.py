"""Staff pages of the attribution app (HTML, not the REST API): the saved TDA study reports
(`manage.py tda_self_influence`, `manage.py tda_compare`) with their figures, and the
similarity audits of generated outputs (seed 003), flagged ones first."""

from __future__ import annotations

import mimetypes

from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from attribution.selectors import clip_calibrations, similarity_audit_counts, similarity_audits
from attribution.studies.reports import tda_report_file, tda_reports
from config.exceptions import NotFound


@staff_member_required
def tda_report_list(request: HttpRequest) -> HttpResponse:
    """Every saved report, newest first, its PNGs inline and its data files linked."""
    return render(request, "attribution/tda_reports.html", {"reports": tda_reports()})


@staff_member_required
def tda_report_download(request: HttpRequest, report: str, filename: str) -> FileResponse:
    try:
        path = tda_report_file(report=report, filename=filename)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path.open("rb"), content_type=content_type)


@staff_member_required
def similarity_audit_report(request: HttpRequest) -> HttpResponse:
    """Audits of generated outputs (flagged first, `?flagged=1` for only those) and the
    calibrations their thresholds came from."""
    flagged_only = request.GET.get("flagged") == "1"
    context = {
        "audits": similarity_audits(flagged_only=flagged_only),
        "counts": similarity_audit_counts(),
        "calibrations": clip_calibrations(),
        "flagged_only": flagged_only,
    }
    return render(request, "attribution/similarity_audits.html", context)
