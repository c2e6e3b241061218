"""What attribution does when a generation completes: one job of each kind, queued on commit."""

from __future__ import annotations

from attribution.services.audit import similarity_audit_request
from attribution.services.training import training_attribution_request
from generation.events import GenerationCompleted


def training_attribution_on_generation_completed(event: GenerationCompleted) -> None:
    training_attribution_request(
        generation_ref=event.generation_ref,
        requested_by_id=event.requested_by_id,
        model_version_id=event.model_version_id,
        model_checkpoint_sha256=event.model_checkpoint_sha256,
    )


def similarity_audit_on_generation_completed(event: GenerationCompleted) -> None:
    similarity_audit_request(
        generation_ref=event.generation_ref,
        requested_by_id=event.requested_by_id,
        model_version_id=event.model_version_id,
    )
