"""What the catalogue's pages read from the apps above it, named in settings so that catalog
imports none of them: a recording's removal from the served generator after its training
consent was revoked (attribution's unlearning job)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string


def recording_removal_status(*, recording_id: int) -> dict[str, Any] | None:
    """{"status", "label", "verified_at", "reason"} of the latest removal, or None."""
    path = getattr(settings, "CATALOG_REMOVAL_STATUS", "")
    return import_string(path)(recording_id=recording_id) if path else None
