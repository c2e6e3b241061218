"""Staff pages of the attribution app (HTML, not the REST API): the saved TDA study reports
(`manage.py tda_self_influence`, `manage.py tda_compare`) with their figures."""

from __future__ import annotations

import mimetypes

from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from attribution.studies import tda_report_file, tda_reports
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
