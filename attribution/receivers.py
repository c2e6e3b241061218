"""What attribution does when a generation completes (one job of each kind, queued on commit)
and when training consent changes (removing recordings from the served generator)."""

from __future__ import annotations

from attribution.services.audit import similarity_audit_request
from attribution.services.training import training_attribution_request
from catalog.events import ConsentChanged
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


def unlearning_on_consent_changed(event: ConsentChanged) -> None:
    """A training revocation (or re-grant) may open, extend or cancel the served model's
    pending unlearning job (settings.UNLEARNING_ON_REVOCATION turns this off)."""
    from django.conf import settings

    from attribution.services.unlearning import model_unlearning_schedule

    if not settings.UNLEARNING_ON_REVOCATION:
        return
    if "training" in event.revoked or "training" in event.granted:
        model_unlearning_schedule(recording_ids=event.recording_ids)
