"""System checks of generation settings."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from generation.candidates import MAX_CANDIDATES


@register()
def candidates_in_range(app_configs, **kwargs) -> list[Error]:
    """Every generation would fail on a candidate count the sampler refuses."""
    count = settings.GENERATION_CANDIDATES
    if isinstance(count, int) and 1 <= count <= MAX_CANDIDATES:
        return []
    return [
        Error(
            f"GENERATION_CANDIDATES is {count!r}; it must be an integer from 1 to {MAX_CANDIDATES}",
            hint="1 samples each output once; 3 is the measured default",
            id="generation.E001",
        )
    ]
