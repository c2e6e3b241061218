"""Celery tasks of the catalogue: take ids, re-fetch, call one selector or service."""

from celery import shared_task

from catalog import selectors


@shared_task(acks_late=True)
def recording_check_integrity(recording_id: int) -> dict:
    """Re-hash a recording's stored audio and compare it with the hash taken at import."""
    recording = selectors.recording_get(recording_id=recording_id)
    return {
        "recording": recording.pk,
        "intact": selectors.recording_audio_intact(recording=recording),
    }


@shared_task(acks_late=True)
def recording_embed(recording_id: int) -> dict:
    """Embed one recording with the active encoder (idempotent; queued after an import)."""
    from catalog.retrieval.runtime import active_encoder_version, loaded_encoder
    from catalog.services.embedding import recording_embed as embed

    recording = selectors.recording_get(recording_id=recording_id)
    version = active_encoder_version()
    track = embed(recording=recording, encoder_version=version, encoder=loaded_encoder(version))
    return {"recording": recording.pk, "encoder": str(version), "windows": track.window_count}
