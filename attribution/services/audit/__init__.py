"""Corroborative similarity audit (seed 003) in the product: writes.

- Clip embeddings: every catalogue recording (training-set recordings are catalogue recordings)
  cut into `AUDIT_CLIP_SECONDS` clips every `AUDIT_CLIP_HOP_SECONDS`, embedded by an encoder
  version, one transaction per recording (`catalogue_clips_embed`, `manage.py embed_clips`).
- Calibration per encoder version and clip spec (`clip_calibrate`, `manage.py calibrate_audit`):
  seed 003 section 4.1's mean / +1 sigma / +2 sigma / random thresholds.
- One audit job per completed generation (`similarity_audit_request`, queued on commit as a
  Celery task on the `audit` queue when AUDIT_ON_GENERATION): the output's clips are searched
  against every catalogue clip in pgvector; the top-k recordings are stored with their best clip
  pair; a recording that was not a reference at or above AUDIT_FLAG_THRESHOLD flags the output,
  and with AUDIT_HOLD_PAYOUTS_ON_FLAG its rights-holder payouts are held in the ledger.
- The second score (`signals.melody_section`): the same search with AUDIT_MELODY_ENCODER (the
  key-invariant melody signal), its own clips and calibration, stored in the audit's `melody`
  section; its flags flag the output too.

Bad input is refused with a reason: outputs shorter than one clip, an encoder version without
calibration, recordings without clips when AUDIT_EMBED_MISSING is off. An audit failure never
touches the generation; it is recorded on the audit.
"""

from attribution.services.audit.clips import (
    EMBED_BATCH,
    ClipsMissing,
    NotCalibrated,
    audio_clip_vectors,
    audit_clip_spec,
    audit_encoder_version,
    catalogue_clips_embed,
    clip_calibrate,
    current_calibration,
    recording_clips_embed,
    recordings_without_clips,
)
from attribution.services.audit.jobs import (
    SIMILARITY_AUDIT_JOB,
    similarity_audit_fail,
    similarity_audit_release,
    similarity_audit_request,
    similarity_audit_retry,
    similarity_audit_run,
    similarity_audit_run_here,
)
from attribution.services.audit.search import SearchResult, clip_hits, clips_search, near_copies

__all__ = [
    "EMBED_BATCH",
    "ClipsMissing",
    "NotCalibrated",
    "SIMILARITY_AUDIT_JOB",
    "SearchResult",
    "audio_clip_vectors",
    "audit_clip_spec",
    "audit_encoder_version",
    "catalogue_clips_embed",
    "clip_calibrate",
    "clip_hits",
    "clips_search",
    "current_calibration",
    "near_copies",
    "recording_clips_embed",
    "recordings_without_clips",
    "similarity_audit_fail",
    "similarity_audit_release",
    "similarity_audit_request",
    "similarity_audit_retry",
    "similarity_audit_run",
    "similarity_audit_run_here",
]
