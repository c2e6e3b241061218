"""What the catalogue announces: what recordings permit changed. Consumers subscribe in settings.

The catalogue does not know who acts on a consent change (attribution removes a recording from
the served generator when its training consent goes). Receivers are dotted paths in
`settings.CATALOG_CONSENT_CHANGED_RECEIVERS`, called inside the transaction that made the
change; a receiver writes rows and queues its work with `transaction.on_commit`. Receivers read
effective consent themselves: an event says what may have changed, not the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class ConsentChanged:
    """Consent names granted or revoked that may change these recordings' effective consent
    (a holder's consent, a work's consent, shares or work links)."""

    recording_ids: tuple[int, ...]
    granted: tuple[str, ...] = ()
    revoked: tuple[str, ...] = ()


def consent_changed_publish(event: ConsentChanged) -> None:
    if not event.recording_ids:
        return
    for path in getattr(settings, "CATALOG_CONSENT_CHANGED_RECEIVERS", []):
        import_string(path)(event)
