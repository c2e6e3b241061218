"""The sweeper over every app's jobs (the kinds are named in settings.JOB_KINDS, so this
package imports no app)."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from jobs.lifecycle import JobKind, SweepOutcome, job_sweep


def job_kinds() -> list[JobKind]:
    return [import_string(path) for path in settings.JOB_KINDS]


def jobs_sweep() -> dict[str, SweepOutcome]:
    """One sweep over every kind of job; what was requeued or failed, by kind."""
    return {kind.name: job_sweep(kind) for kind in job_kinds()}
