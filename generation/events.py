"""What generation announces: a generation completed. Its consumers subscribe in settings.

The worker does not know who charges the fee or which jobs follow a generation. Receivers
are dotted paths in `settings.GENERATION_COMPLETED_RECEIVERS`, called in that order inside
the completing transaction, after the generation's log record is written. A receiver only
writes rows and queues work with `transaction.on_commit(..., robust=True)`; if it raises,
the whole completion rolls back (nothing is stored, logged or charged) and the generation
fails with the receiver's reason, as a failed fee posting always did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class CompletedReference:
    recording_id: int
    level: str
    role: str
    weight: float


@dataclass(frozen=True)
class UsedModule:
    """A learned module a generation used, with the recordings it was trained on (empty and
    `external` for a module trained outside the platform), so the auxiliary pool can pay
    the creators of its data."""

    label: str
    kind: str  # generator | conditioning_encoder | text_tower
    training_recording_ids: tuple[int, ...] = ()
    external: bool = False


@dataclass(frozen=True)
class GenerationCompleted:
    generation_ref: str
    requested_by_id: int
    model_version_id: int
    model_checkpoint_sha256: str
    verified_at: datetime
    distribution: str
    references: tuple[CompletedReference, ...]
    training_recording_ids: tuple[int, ...]
    modules: tuple[UsedModule, ...] = ()


Receiver = Callable[[GenerationCompleted], object]


def generation_completed_receivers() -> list[Receiver]:
    """The receivers named in settings, in order (a wrong path fails loudly at the first use)."""
    return [import_string(path) for path in settings.GENERATION_COMPLETED_RECEIVERS]


def generation_completed_publish(event: GenerationCompleted) -> None:
    """Call every receiver; must run inside the completing transaction."""
    for receiver in generation_completed_receivers():
        receiver(event)
