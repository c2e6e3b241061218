"""System checks of attribution settings that other apps' settings must agree with."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register


@register()
def generations_hold_an_audit_clip(app_configs, **kwargs) -> list[Error]:
    """An output shorter than one audit clip could not be audited, so its near-copy check and
    payout hold would never apply (issue 17)."""
    if settings.GENERATION_MIN_SECONDS + 1e-9 >= settings.AUDIT_CLIP_SECONDS:
        return []
    return [
        Error(
            f"GENERATION_MIN_SECONDS ({settings.GENERATION_MIN_SECONDS:g}) is shorter than "
            f"AUDIT_CLIP_SECONDS ({settings.AUDIT_CLIP_SECONDS:g}): short outputs would escape "
            "the similarity audit",
            hint="set GENERATION_MIN_SECONDS to at least AUDIT_CLIP_SECONDS",
            id="attribution.E001",
        )
    ]
