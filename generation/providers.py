"""What generation reads from the apps above it (attribution, disputes), named in settings so
that generation imports none of them: the similarity audit a generation's detail shows, the
audit's near-copy search that the quality evaluation's memorisation rate uses, and the
disputes its receipt lists."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string


def similarity_audit_summary(*, generation_ref: str) -> Any | None:
    """The audit result of one generation (fields as `SimilarityAuditOutput` reads them)."""
    return import_string(settings.GENERATION_AUDIT_SUMMARY)(generation_ref=generation_ref)


def near_copies(**kwargs: Any) -> list[Any]:
    """The audit's matches of an output at its flag threshold (no audit records written)."""
    return import_string(settings.GENERATION_NEAR_COPIES)(**kwargs)


def generation_disputes(*, generation_ref: str, user: Any) -> list[Any]:
    """The disputes of one generation that `user` may read (for the receipt); none where no
    app provides them."""
    name = getattr(settings, "GENERATION_DISPUTES", "")
    return import_string(name)(generation_ref=generation_ref, user=user) if name else []
