"""What royalties does when another app announces something."""

from __future__ import annotations

from generation.events import GenerationCompleted
from royalties.allocation import PaidModule
from royalties.services import ChargedReference, generation_fee_post


def fee_on_generation_completed(event: GenerationCompleted) -> None:
    """Charge the completed generation (once; a repeated event finds the first posting)."""
    generation_fee_post(
        generation_ref=event.generation_ref,
        verified_at=event.verified_at,
        distribution=event.distribution,
        references=[
            ChargedReference(recording_id=r.recording_id, level=r.level, weight=r.weight)
            for r in event.references
        ],
        training_recording_ids=list(event.training_recording_ids),
        modules=[
            PaidModule(m.label, m.kind, tuple(m.training_recording_ids), m.external)
            for m in event.modules
        ]
        or None,
    )
