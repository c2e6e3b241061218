"""Dispute pages (HTML). Thin: selectors read, services write; forms work without JavaScript
(POST, then redirect). A refused form is shown again with the service's message and status
(4xx), and nothing was written.

- the portal: a holder's disputes (opened by it or concerning it), the generations that paid it
  recently, and the form to open one (prefilled from a generation);
- the studio: a generation's disputes and the maker's form;
- one dispute: its details, what is held, its chain of events, a note form, and (staff) the
  resolve form with the correction its subject needs;
- staff: every open dispute, nearest deadline first, and the recently closed ones.
"""

from __future__ import annotations

from functools import partial

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from catalog.selectors import holder_readable_by, holder_recordings_any_side
from config.exceptions import DomainError, InvalidInput, NotFound
from disputes import selectors, services
from disputes.models import Dispute
from royalties.selectors import format_minor, holder_recent_generations

SUBJECTS_OF_GENERATIONS = [
    (value, label) for value, label in Dispute.Subject.choices if value != "ownership"
]


def _money():
    return partial(format_minor, currency=settings.ROYALTIES_DEFAULT_CURRENCY)


def _rows(summaries) -> list[dict]:
    money = _money()
    return [{"s": s, "d": s.dispute, "held": money(s.held_minor)} for s in summaries]


def _optional_id(value: str | None, name: str) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be an id", details={name: value[:40]}) from None


@login_required
def holder_disputes(request: HttpRequest, holder_id: int) -> HttpResponse:
    """A holder's disputes and the form to open one (POST opens it, for this holder)."""
    holder = holder_readable_by(user=request.user, holder_id=holder_id)
    error, status = "", 200
    form = {
        "subject": request.POST.get("subject") or request.GET.get("subject") or "tda_shares",
        "generation": (request.POST.get("generation") or request.GET.get("generation") or "")[:64],
        "recording": request.POST.get("recording") or request.GET.get("recording") or "",
        "reason": request.POST.get("reason", ""),
        "evidence_link": request.POST.get("evidence_link", ""),
    }
    if request.method == "POST":
        try:
            dispute = services.dispute_open(
                user=request.user,
                subject=form["subject"],
                reason=form["reason"],
                generation_ref=form["generation"] if form["subject"] != "ownership" else "",
                recording_id=_optional_id(form["recording"], "recording"),
                holder_id=holder.pk,
                evidence_file=request.FILES.get("evidence"),
                evidence_link=form["evidence_link"],
            )
        except DomainError as exc:
            error, status = exc.message, exc.http_status
        else:
            messages.success(
                request, f"Dispute {dispute.pk} opened; the amounts in question are held."
            )
            return redirect("dispute", dispute.pk)
    money = _money()
    generations = [
        {**row, "money": {k: money(row[k]) for k in ("ita", "tda", "auxiliary", "total")}}
        for row in holder_recent_generations(holder=holder)
    ]
    context = {
        "holder": holder,
        "rows": _rows(
            selectors.summaries(selectors.holder_disputes(holder=holder), holder_id=holder.pk)
        ),  # fmt: skip
        "generations": generations,
        "recordings": holder_recordings_any_side(holder=holder),
        "subjects": Dispute.Subject.choices,
        "form": form,
        "error": error,
    }
    return render(request, "disputes/holder_disputes.html", context, status=status)


@login_required
def generation_disputes(request: HttpRequest, uid) -> HttpResponse:
    """A generation's disputes as its maker (or staff) sees them, and the maker's form."""
    ref = str(uid)
    facts = selectors.generation_facts(generation_ref=ref)
    if not (request.user.is_staff or facts.requested_by == request.user.pk):
        raise NotFound(f"generation {ref} does not exist")
    error, status = "", 200
    form = {
        "subject": request.POST.get("subject", "direct_attribution"),
        "reason": request.POST.get("reason", ""),
        "evidence_link": request.POST.get("evidence_link", ""),
    }
    if request.method == "POST":
        try:
            dispute = services.dispute_open(
                user=request.user,
                subject=form["subject"],
                reason=form["reason"],
                generation_ref=ref,
                evidence_file=request.FILES.get("evidence"),
                evidence_link=form["evidence_link"],
            )
        except DomainError as exc:
            error, status = exc.message, exc.http_status
        else:
            messages.success(
                request, f"Dispute {dispute.pk} opened; the amounts in question are held."
            )
            return redirect("dispute", dispute.pk)
    disputes = selectors.disputes_visible_to(user=request.user).filter(generation_ref=ref)
    context = {
        "generation_ref": ref,
        "rows": _rows(selectors.summaries(disputes)),
        "subjects": SUBJECTS_OF_GENERATIONS,
        "form": form,
        "error": error,
    }
    return render(request, "disputes/generation_disputes.html", context, status=status)


def _numbers(request: HttpRequest, prefix: str, kind: type) -> dict[str, float | int]:
    """`<prefix>-<id>` fields (and one `<prefix>-new-id` / `<prefix>-new-value` pair) as
    {id: number}; blank fields are left out."""
    values: dict[str, float | int] = {}
    pairs = [
        (name[len(prefix) + 1 :], value)
        for name, value in request.POST.items()
        if name.startswith(f"{prefix}-") and not name.startswith(f"{prefix}-new-")
    ]
    new_id = request.POST.get(f"{prefix}-new-id", "").strip()
    if new_id:
        pairs.append((new_id, request.POST.get(f"{prefix}-new-value", "")))
    for key, value in pairs:
        value = value.strip()
        if not value:
            continue
        try:
            values[str(int(key))] = kind(value)
        except ValueError:
            raise InvalidInput(f"'{value[:20]}' for {key[:20]} is not a number") from None
    return values


def _resolve_form(dispute: Dispute) -> dict:
    """What the staff's resolve form offers for this dispute's correction, prefilled with
    what is paid now."""
    if not dispute.is_open:
        return {}
    money = _money()
    if dispute.subject == Dispute.Subject.OWNERSHIP:
        shares = selectors.master_holder_ids(recording_id=dispute.recording_id)
        names = selectors.names_of_holders(shares)
        return {
            "kind": "master",
            "rows": [
                {"id": h, "label": names.get(h, str(h)), "value": bp}
                for h, bp in sorted(shares.items())
            ],
        }
    if dispute.subject == Dispute.Subject.SIMILARITY_FLAG:
        return {"kind": "flag"}
    facts = selectors.generation_facts(generation_ref=dispute.generation_ref)
    if dispute.subject == Dispute.Subject.TDA_SHARES:
        paid = selectors.tda_paid(generation_ref=dispute.generation_ref)
        ids = sorted(set(facts.training_ids) | set(paid), key=lambda r: (-paid.get(r, 0), r))
        kind, current = "share", paid
    else:
        paid = selectors.direct_paid(generation_ref=dispute.generation_ref)
        ids = sorted(set(facts.reference_ids) | set(paid))
        kind, current = "weight", {r: facts.weights.get(r, 0) for r in ids}
    titles = selectors.recordings_titles(ids)
    return {
        "kind": kind,
        "rows": [
            {
                "id": rid,
                "label": titles.get(rid, f"Recording {rid}"),
                "value": current.get(rid, 0),
                "paid": money(paid.get(rid, 0)),
            }
            for rid in ids
        ],
    }


@login_required
def dispute_page(request: HttpRequest, dispute_id: int) -> HttpResponse:
    """One dispute: details, what is held, its chain; a note (parties), resolve (staff)."""
    dispute = selectors.dispute_readable_by(user=request.user, dispute_id=dispute_id)
    error, status = "", 200
    if request.method == "POST":
        try:
            if request.POST.get("action") == "resolve":
                services.dispute_resolve(
                    actor=request.user,
                    dispute_id=dispute.pk,
                    outcome=request.POST.get("outcome", ""),
                    note=request.POST.get("note", ""),
                    shares=_numbers(request, "share", float) or None,
                    weights=_numbers(request, "weight", float) or None,
                    master_shares=_numbers(request, "master", int) or None,
                )
                message = f"Dispute {dispute.pk} {request.POST.get('outcome')}."
            else:
                services.dispute_note_add(
                    user=request.user,
                    dispute_id=dispute.pk,
                    note=request.POST.get("note", ""),
                    evidence_link=request.POST.get("evidence_link", ""),
                )
                message = "Note added."
        except DomainError as exc:
            error, status = exc.message, exc.http_status
        else:
            messages.success(request, message)
            return redirect("dispute", dispute.pk)
        dispute.refresh_from_db()
    money = _money()
    summary = selectors.summaries([dispute])[0]
    was = dispute.correction.get("was_paid_minor", {})
    now = dispute.correction.get("now_paid_minor", {})
    titles = selectors.recordings_titles([int(rid) for rid in {*was, *now}])
    corrected = [
        {"label": titles.get(int(rid), rid), "was": money(was.get(rid, 0)),
         "now": money(now.get(rid, 0))}
        for rid in sorted({*was, *now}, key=int)
    ]  # fmt: skip
    context = {
        "d": dispute,
        "held": money(summary.held_minor),
        "recording_title": summary.recording_title,
        "corrected": corrected,
        "events": selectors.dispute_events(dispute),
        "parties": selectors.names_of_holders(dispute.parties.values_list("pk", flat=True)),
        "resolve": _resolve_form(dispute) if request.user.is_staff else {},
        "error": error,
        "post": request.POST if error else {},
    }
    return render(request, "disputes/dispute.html", context, status=status)


@login_required
def dispute_evidence(request: HttpRequest, dispute_id: int) -> FileResponse:
    dispute = selectors.dispute_readable_by(user=request.user, dispute_id=dispute_id)
    if not dispute.evidence_file:
        raise Http404("no evidence file")
    return FileResponse(
        dispute.evidence_file.open("rb"),
        as_attachment=True,
        filename=dispute.evidence_name or "evidence",
        content_type="application/octet-stream",
    )


@staff_member_required
def staff_disputes(request: HttpRequest) -> HttpResponse:
    """Open disputes (nearest deadline first) with what each holds; the latest closed ones."""
    closed = Dispute.objects.exclude(status=Dispute.Status.OPEN).order_by("-resolved_at")[:50]
    context = {
        "open_rows": _rows(selectors.summaries(selectors.open_disputes())),
        "closed_rows": _rows(selectors.summaries(closed)),
    }
    return render(request, "disputes/staff_disputes.html", context)
