"""Rights-holder consent portal (HTML pages). Thin: selectors read, services write.

Forms work without JavaScript (plain POST, then redirect). A change that revokes anything is
shown on a confirmation page first and applied only when that page is submitted
(`confirmed=yes`); grants apply at once. A change to several recordings is applied in one
transaction, so an error on any of them leaves all unchanged. Writers and publishers consent
per work the same way (a recording needs its master holders and its works' holders).

Granting training on a recording that came with a reservation of mining rights (its file's
XMP, its import metadata) is confirmed on the same page before it applies; the holder's
override is recorded (`catalog.services.reservations`).
"""

from __future__ import annotations

from dataclasses import replace

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from catalog import selectors
from catalog.models import ConsentVersion, Recording, RightsHolder, Use, Work
from catalog.providers import recording_removal_status
from catalog.services.consent import ConsentChange, consent_changes_apply
from config.exceptions import InvalidInput

RECORDINGS_PER_PAGE = 25


class PlannedChange(ConsentChange):
    """A consent change as the confirmation page shows it: labels, and the consequences of
    each revocation."""

    @property
    def subject(self) -> Recording | Work:
        return self.work if self.work is not None else self.recording

    @property
    def anchor(self) -> str:
        """The subject's card id on its portal page (`recording-3`, `work-7`)."""
        return f"{'work' if self.work is not None else 'recording'}-{self.subject.pk}"

    @property
    def embodied_by(self) -> list[Recording]:
        """For a work: the recordings embodying it, which a revocation withdraws as well."""
        if self.work is None:
            return []
        return [link.recording for link in self.work.recording_links.all()]

    @property
    def grant_labels(self) -> list[str]:
        return [selectors.consent_label(n) for n in self.grant]

    @property
    def revocations(self) -> list[tuple[str, str]]:
        return [
            (selectors.consent_label(n), selectors.REVOCATION_CONSEQUENCES[n]) for n in self.revoke
        ]

    @property
    def reservations(self) -> list:
        """The reservations of mining rights this change's training grant would override."""
        if self.work is not None or Use.TRAINING not in self.grant:
            return []
        return list(self.recording.reservations.all())


@login_required
def portal_home(request: HttpRequest) -> HttpResponse:
    """The holders the user acts for, each with its recordings, works and payouts."""
    holders = list(selectors.user_holders(user=request.user))
    with_works = selectors.holder_ids_with_works(holder_ids=[h.pk for h in holders])
    return render(
        request, "catalog/portal/home.html", {"holders": holders, "with_works": with_works}
    )


@login_required
def holder_recordings(request: HttpRequest, holder_id: int) -> HttpResponse:
    """A holder's recordings: co-holders and shares, this holder's toggles per use and
    distribution, whether each is effective, and the bulk-change form."""
    holder = selectors.holder_readable_by(user=request.user, holder_id=holder_id)
    page = Paginator(selectors.holder_recordings(holder=holder), RECORDINGS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    rows = [
        replace(row, removal=recording_removal_status(recording_id=row.recording.pk))
        for row in selectors.holder_consent_overview(holder=holder, recordings=page.object_list)
    ]
    return render(
        request,
        "catalog/portal/recordings.html",
        {
            "holder": holder,
            "page": page,
            "rows": rows,
            "names": _name_choices(),
        },
    )


@login_required
@require_POST
def recording_consent_change(
    request: HttpRequest, holder_id: int, recording_id: int
) -> HttpResponse:
    """Save one recording's toggles: the form sends the names that should be on; names on now
    and absent from the form are revoked (after confirmation)."""
    holder = selectors.holder_readable_by(user=request.user, holder_id=holder_id)
    recording = selectors.holder_recording_get(holder=holder, recording_id=recording_id)
    current = selectors.consent_current(holder=holder, recording=recording)
    change = _toggles_change(request, current, recording=recording)
    return _confirm_or_apply(request, holder, [change], cancel=_anchor(holder, change, request))


@login_required
def holder_works(request: HttpRequest, holder_id: int) -> HttpResponse:
    """A holder's works: ISWC, co-writers and publishers with roles and shares, the
    recordings embodying each, and this holder's toggles per use and distribution."""
    holder = selectors.holder_readable_by(user=request.user, holder_id=holder_id)
    page = Paginator(selectors.holder_works(holder=holder), RECORDINGS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    rows = selectors.holder_work_consent_overview(holder=holder, works=page.object_list)
    return render(
        request, "catalog/portal/works.html", {"holder": holder, "page": page, "rows": rows}
    )


@login_required
@require_POST
def work_consent_change(request: HttpRequest, holder_id: int, work_id: int) -> HttpResponse:
    """Save one work's toggles, as for a recording (revocations after confirmation)."""
    holder = selectors.holder_readable_by(user=request.user, holder_id=holder_id)
    work = selectors.holder_work_get(holder=holder, work_id=work_id)
    current = selectors.consent_current(holder=holder, work=work)
    change = _toggles_change(request, current, work=work)
    return _confirm_or_apply(request, holder, [change], cancel=_anchor(holder, change, request))


@login_required
def work_consent_history(request: HttpRequest, holder_id: int, work_id: int) -> HttpResponse:
    """Every consent version this holder made for the work, and where its co-holders stand."""
    holder = selectors.holder_readable_by(user=request.user, holder_id=holder_id)
    work = selectors.holder_work_get(holder=holder, work_id=work_id)
    (overview,) = selectors.holder_work_consent_overview(holder=holder, works=[work])
    return render(
        request,
        "catalog/portal/history.html",
        {
            "holder": holder,
            "title": work.title,
            "meta": f"Work{f' · ISWC {work.iswc}' if work.iswc else ''}",
            "overview": overview,
            "entries": selectors.consent_history_entries(holder=holder, work=work),
            "co_holders": [(share, _permitted(share.version)) for share in overview.holders],
            "work_holders": [],
            "back_url": f"{reverse('portal-works', args=[holder.pk])}#work-{work.pk}",
            "back_label": f"Back to the works of {holder.name}",
        },
    )


@login_required
@require_POST
def consent_bulk_change(request: HttpRequest, holder_id: int) -> HttpResponse:
    """Grant or revoke the chosen uses/distributions for every selected recording."""
    holder = selectors.holder_readable_by(user=request.user, holder_id=holder_id)
    action = request.POST.get("action")
    if action not in ("grant", "revoke"):
        raise InvalidInput("choose whether to grant or revoke", details={"action": action})
    uses, distributions = selectors.parse_consent_names(request.POST.getlist("names"))
    names = [*uses, *distributions]
    if not names:
        raise InvalidInput("choose at least one use or distribution to change")
    ids = _recording_ids(request.POST.getlist("recordings"))
    if not ids:
        raise InvalidInput("select at least one recording")
    recordings = [selectors.holder_recording_get(holder=holder, recording_id=i) for i in ids]
    current = selectors.holder_current_consents(holder=holder)
    changes = []
    for recording in recordings:
        version = current.get(recording.pk)
        on = {n for n in names if version and version.permits(n)}
        if action == "grant":
            changes.append(
                PlannedChange(recording, grant=[n for n in names if n not in on], revoke=[])
            )
        else:
            changes.append(PlannedChange(recording, grant=[], revoke=[n for n in names if n in on]))
    return _confirm_or_apply(
        request, holder, changes, cancel=reverse("portal-holder", args=[holder.pk])
    )


@login_required
def recording_consent_history(
    request: HttpRequest, holder_id: int, recording_id: int
) -> HttpResponse:
    """Every consent version this holder made for the recording, and where co-holders stand."""
    holder = selectors.holder_readable_by(user=request.user, holder_id=holder_id)
    recording = selectors.holder_recording_get(holder=holder, recording_id=recording_id)
    (overview,) = selectors.holder_consent_overview(holder=holder, recordings=[recording])
    return render(
        request,
        "catalog/portal/history.html",
        {
            "holder": holder,
            "title": recording.title,
            "meta": f"{recording.artist.name}"
            + (f" · ISRC {recording.isrc}" if recording.isrc else ""),
            "overview": overview,
            "entries": selectors.consent_history_entries(holder=holder, recording=recording),
            "co_holders": [(share, _permitted(share.version)) for share in overview.holders],
            "work_holders": [(h, _permitted(h.version)) for h in overview.work_holders],
            "back_url": f"{reverse('portal-holder', args=[holder.pk])}#recording-{recording.pk}",
            "back_label": f"Back to the recordings of {holder.name}",
        },
    )


def _confirm_or_apply(
    request: HttpRequest, holder: RightsHolder, changes: list[PlannedChange], *, cancel: str
) -> HttpResponse:
    note = request.POST.get("note", "").strip()[:500]
    noun = "work" if any(c.work is not None for c in changes) else "recording"
    revoking = [c for c in changes if c.revoke]
    # granting training on a recording that came with a reservation overrides it: never silently
    overriding = [c for c in changes if c.reservations]
    if (revoking or overriding) and request.POST.get("confirmed") != "yes":
        fields = [
            (key, value)
            for key in ("consent", "names", "recordings", "action", "page")
            for value in request.POST.getlist(key)
        ]
        return render(
            request,
            "catalog/portal/confirm.html",
            {
                "holder": holder,
                "changes": changes,
                "revoking": revoking,
                "overriding": overriding,
                "noun": noun,
                "fields": fields,
                "note": note,
                "action_url": request.path,
                "cancel_url": cancel,
            },
        )
    changed = consent_changes_apply(
        actor=request.user,
        holder=holder,
        changes=changes,
        note=note,
        confirm_reservation=bool(overriding),  # only reached after the confirmation page
    )
    if changed:
        phrase = f"1 {noun}" if changed == 1 else f"{changed} {noun}s"
        messages.success(request, f"Consent saved for {phrase}.")
    else:
        messages.info(request, "Nothing changed: the consent was already as chosen.")
    if len(changes) == 1:
        return redirect(_anchor(holder, changes[0], request))
    return redirect("portal-holder", holder.pk)


def _toggles_change(
    request: HttpRequest,
    current: ConsentVersion | None,
    *,
    recording: Recording | None = None,
    work: Work | None = None,
) -> PlannedChange:
    """The form sends the names that should be on; names on now and absent from the form
    are revoked (after confirmation)."""
    uses, distributions = selectors.parse_consent_names(request.POST.getlist("consent"))
    wanted = {*uses, *distributions}
    now_on = set(_permitted_names(current))
    return PlannedChange(
        recording,
        grant=[n for n in selectors.CONSENT_NAMES if n in wanted - now_on],
        revoke=[n for n in selectors.CONSENT_NAMES if n in now_on - wanted],
        work=work,
    )


def _permitted_names(version: ConsentVersion | None) -> list[str]:
    return [n for n in selectors.CONSENT_NAMES if version and version.permits(n)]


def _permitted(version: ConsentVersion | None) -> list[str]:
    return [selectors.consent_label(n) for n in _permitted_names(version)]


def _name_choices() -> list[tuple[str, str, str, str]]:
    """(name, label, explanation, kind) for the bulk form's checkboxes."""
    return [
        (
            n,
            selectors.consent_label(n),
            selectors.CONSENT_EXPLANATIONS[n],
            "use" if n in Use.values else "distribution",
        )
        for n in selectors.CONSENT_NAMES
    ]


def _recording_ids(values: list[str]) -> list[int]:
    try:
        return list(dict.fromkeys(int(v) for v in values))
    except ValueError:
        raise InvalidInput("recordings must be ids", details={"recordings": values}) from None


def _anchor(holder: RightsHolder, change: PlannedChange, request: HttpRequest) -> str:
    """The recording's (or work's) card on the holder's page it was changed from."""
    page = request.POST.get("page", "")
    query = f"?page={page}" if page.isdigit() and page != "1" else ""
    listing = "portal-works" if change.work is not None else "portal-holder"
    return f"{reverse(listing, args=[holder.pk])}{query}#{change.anchor}"
