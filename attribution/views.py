"""Staff pages of the attribution app (HTML, not the REST API): the saved TDA study reports
(`manage.py tda_self_influence`, `manage.py tda_compare`) with their figures, and the
similarity audits of generated outputs (seed 003), flagged ones first, and the TDA hub watch
(training recordings paid far more often than their expected rate)."""

from __future__ import annotations

import mimetypes

from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from attribution.selectors import (
    clip_calibrations,
    model_unlearning_jobs,
    similarity_audit_counts,
    similarity_audits,
    tda_done_model_versions,
    tda_hub_watch,
)
from attribution.studies.reports import tda_report_file, tda_reports
from config.exceptions import DomainError, InvalidInput, NotFound


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


def _number(request: HttpRequest, name: str, kind: type, default):
    value = request.GET.get(name, "").strip()
    if not value:
        return default
    try:
        return kind(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, not {value!r}") from None


@staff_member_required
def tda_hub_report(request: HttpRequest) -> HttpResponse:
    """The hub watch of one model version (`?model_version=`, `flag_ratio=`, `min_z=`); a bad
    choice shows its message above the form instead of an error page, so it can be fixed."""
    form = {"model_version": request.GET.get("model_version", ""), "flag_ratio": 3.0, "min_z": 3.0}
    report, error, status = None, "", 200
    try:
        form["flag_ratio"] = _number(request, "flag_ratio", float, 3.0)
        form["min_z"] = _number(request, "min_z", float, 3.0)
        report = tda_hub_watch(
            model_version_id=_number(request, "model_version", int, None),
            flag_ratio=form["flag_ratio"],
            min_z=form["min_z"],
        )
    except DomainError as exc:
        error, status = exc.message, exc.http_status
        if isinstance(exc, NotFound) and not form["model_version"]:
            status = 200  # nothing done yet: an empty report, not a missing page
    context = {
        "report": report,
        "error": error,
        "form": form,
        "model_versions": report["model_versions"] if report else tda_done_model_versions(),
    }
    return render(request, "attribution/tda_hubs.html", context, status=status)


@staff_member_required
def unlearning_report(request: HttpRequest) -> HttpResponse:
    """Removals of revoked recordings from the served generator: status, verification checks
    and figures, and the model version each produced."""
    return render(request, "attribution/unlearning.html", {"jobs": model_unlearning_jobs()})
