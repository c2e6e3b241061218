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
