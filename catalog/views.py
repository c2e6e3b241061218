"""Rights-holder consent portal (HTML pages). Thin: selectors read, services write.

Forms work without JavaScript (plain POST, then redirect). A change that revokes anything is
shown on a confirmation page first and applied only when that page is submitted
(`confirmed=yes`); grants apply at once. A change to several recordings is applied in one
transaction, so an error on any of them leaves all unchanged.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from catalog import selectors
from catalog.models import Recording, RightsHolder, Use
from catalog.services.consent import ConsentChange, consent_changes_apply
from config.exceptions import InvalidInput

RECORDINGS_PER_PAGE = 25


class PlannedChange(ConsentChange):
    """A consent change as the confirmation page shows it: labels, and the consequences of
    each revocation."""

    @property
    def grant_labels(self) -> list[str]:
        return [selectors.consent_label(n) for n in self.grant]

    @property
    def revocations(self) -> list[tuple[str, str]]:
        return [
            (selectors.consent_label(n), selectors.REVOCATION_CONSEQUENCES[n]) for n in self.revoke
        ]


@login_required
def portal_home(request: HttpRequest) -> HttpResponse:
    """The holders the user acts for, each with its recordings and payouts."""
    holders = selectors.user_holders(user=request.user)
    return render(request, "catalog/portal/home.html", {"holders": holders})


@login_required
def holder_recordings(request: HttpRequest, holder_id: int) -> HttpResponse:
    """A holder's recordings: co-holders and shares, this holder's toggles per use and
    distribution, whether each is effective, and the bulk-change form."""
    holder = selectors.holder_readable_by(user=request.user, holder_id=holder_id)
    page = Paginator(selectors.holder_recordings(holder=holder), RECORDINGS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    rows = selectors.holder_consent_overview(holder=holder, recordings=page.object_list)
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
    uses, distributions = selectors.parse_consent_names(request.POST.getlist("consent"))
    wanted = {*uses, *distributions}
    current = selectors.consent_current(holder=holder, recording=recording)
    now_on = {n for n in selectors.CONSENT_NAMES if current and current.permits(n)}
    change = PlannedChange(
        recording,
        grant=[n for n in selectors.CONSENT_NAMES if n in wanted - now_on],
        revoke=[n for n in selectors.CONSENT_NAMES if n in now_on - wanted],
    )
    return _confirm_or_apply(
        request, holder, [change], cancel=_recording_anchor(holder, recording, request)
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
    entries = selectors.consent_history_entries(holder=holder, recording=recording)
    co_holders = [
        (share, [selectors.consent_label(n) for n in selectors.CONSENT_NAMES
                 if share.version and share.version.permits(n)])
        for share in overview.holders
    ]  # fmt: skip
    return render(
        request,
        "catalog/portal/history.html",
        {
            "holder": holder,
            "recording": recording,
            "overview": overview,
            "entries": entries,
            "co_holders": co_holders,
        },
    )


def _confirm_or_apply(
    request: HttpRequest, holder: RightsHolder, changes: list[PlannedChange], *, cancel: str
) -> HttpResponse:
    note = request.POST.get("note", "").strip()[:500]
    revoking = [c for c in changes if c.revoke]
    if revoking and request.POST.get("confirmed") != "yes":
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
                "fields": fields,
                "note": note,
                "action_url": request.path,
                "cancel_url": cancel,
            },
        )
    changed = consent_changes_apply(actor=request.user, holder=holder, changes=changes, note=note)
    if changed:
        messages.success(request, f"Consent saved for {_recordings_phrase(changed)}.")
    else:
        messages.info(request, "Nothing changed: the consent was already as chosen.")
    if len(changes) == 1:
        return redirect(_recording_anchor(holder, changes[0].recording, request))
    return redirect("portal-holder", holder.pk)


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


def _recording_anchor(holder: RightsHolder, recording: Recording, request: HttpRequest) -> str:
    """The recording's card on the holders' page it was changed from."""
    page = request.POST.get("page", "")
    query = f"?page={page}" if page.isdigit() and page != "1" else ""
    return f"{reverse('portal-holder', args=[holder.pk])}{query}#recording-{recording.pk}"


def _recordings_phrase(count: int) -> str:
    return "1 recording" if count == 1 else f"{count} recordings"
