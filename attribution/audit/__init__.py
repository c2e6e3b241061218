"""Corroborative similarity audit (seed 003): plain numpy/torch code, no Django imports.

- `clips`: 3-second clips of mono audio (configurable window and hop).
- `calibration`: thresholds from the distribution of top similarities among random catalogue
  clips (section 4.1: mean, +1 sigma, +2 sigma and a random-pair bin).
- `matching`: clip hits aggregated to recordings (best clip per recording) and the flag rule
  (highly similar to a recording that was not a reference: approximate memorisation).
- `perturb`: the section 5.1 perturbations (pitch shift, time stretch, white noise, mash-ups).
- `robustness`: top-1/5/10 recall of the source recording, and section 5.2 summaries.
- `plots`: PNG figures of the two studies.

The Django side is `attribution.services.audit` (writes), `attribution.selectors` (reads) and
the commands `embed_clips`, `calibrate_audit`, `audit_generation`, `audit_robustness`,
`audit_model`.
"""

from attribution.audit.calibration import (
    THRESHOLD_NAMES,
    Calibration,
    CalibrationConfig,
    calibrate,
)
from attribution.audit.clips import AuditError, ClipSpec, OutputTooShort, split_clips
from attribution.audit.matching import ClipHit, RecordingMatch, best_matches, flagged_matches

__all__ = [
    "THRESHOLD_NAMES",
    "AuditError",
    "Calibration",
    "CalibrationConfig",
    "ClipHit",
    "ClipSpec",
    "OutputTooShort",
    "RecordingMatch",
    "best_matches",
    "calibrate",
    "flagged_matches",
    "split_clips",
]
