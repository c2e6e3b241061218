"""One lifecycle for the platform's background jobs (generation, training-time attribution,
similarity audit). Each app owns its job model and says how to queue and fail it (`JobKind`);
the rules are the same for all:

- **claim** under a row lock: a finished job is left alone; a running job whose heartbeat is
  fresh belongs to a live worker, so the delivery raises `JobBusy` and is retried later
  instead of being dropped (if that worker has died, the retry finds the heartbeat stale and
  runs the job again); after `max_attempts` claims the job fails for good. The claim records
  the worker process (`host:pid`): a holder on this host whose process is gone is known lost
  at once, without waiting for its heartbeat to go stale;
- a **heartbeat** with every (throttled) progress write;
- **fail with a reason** for every exception except transient database errors, which the
  task retries with backoff and a cap;
- a **sweeper** (`manage.py sweep_jobs`, periodic in the demo) that requeues running jobs
  whose heartbeat stopped and queued (or overdue waiting) jobs whose message was lost, and
  fails those out of attempts, so that nothing stays "running" or "queued" for good.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import InterfaceError, OperationalError, models, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = (OperationalError, InterfaceError)  # the database went away: retry
HEARTBEAT_SECONDS = 0.5


def worker_identity() -> str:
    """Which process holds a job: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_is_gone(identity: str) -> bool:
    """True when the holder ran on this host and its process no longer exists (a killed
    worker); False when it is alive or runs elsewhere (then only its heartbeat can tell)."""
    host, _, pid = identity.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone too
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True
    except OSError:
        return False


class JobBusy(Exception):
    """Another worker holds this job and is alive: deliver the task again later."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(f"the job is running elsewhere; retry in {retry_in:.0f} s")
        self.retry_in = retry_in


@dataclass(frozen=True)
class JobKind:
    """How one app's job model takes part in the lifecycle."""

    name: str  # "generation", "training attribution", ...
    model: type[models.Model]
    queued: str
    running: str
    finished: tuple[str, ...]  # terminal statuses (failed included)
    requeue: Callable[[int], Any]  # queue the job's task again (called after commit)
    fail: Callable[[int, str], Any]  # the app's own failure path (log record, fields)
    stale_after: timedelta = timedelta(minutes=2)  # no heartbeat this long: worker lost
    max_attempts: int = 3  # claims before a lost job fails for good
    claim_updates: dict[str, Any] = field(default_factory=dict)  # extra fields to reset
    # A status that waits for a due time before it is queued (an unlearning batch window):
    # its task was sent with a countdown, so a lost message would leave it waiting for good.
    waiting: str | None = None
    waiting_until: str = ""  # the field holding the due time


def job_claim(kind: JobKind, pk: int) -> models.Model | None:
    """Mark the job running for this worker; None when it is finished (nothing to do).

    Raises `JobBusy` when another worker's heartbeat is fresh, and fails the job when a lost
    worker has used up its attempts."""
    now = timezone.now()
    with transaction.atomic():
        job = kind.model.objects.select_for_update().get(pk=pk)
        if job.status in kind.finished:
            return None
        if job.status == kind.running and job.heartbeat_at and not holder_is_gone(job.worker):
            age = (now - job.heartbeat_at).total_seconds()
            if age < kind.stale_after.total_seconds():
                raise JobBusy(retry_in=kind.stale_after.total_seconds() - age + 1)
        out_of_attempts = job.attempts >= kind.max_attempts
        if not out_of_attempts:
            updates = {"status": kind.running, "attempts": job.attempts + 1, "started_at": now,
                       "heartbeat_at": now, "worker": worker_identity(),
                       **kind.claim_updates}  # fmt: skip
            for name, value in updates.items():
                setattr(job, name, value)
            job.save(update_fields=list(updates))
    if out_of_attempts:
        kind.fail(pk, f"the worker was lost {job.attempts} times; giving up")
        return None
    return job


def heartbeat(kind: JobKind, pk: int, **fields: Any) -> None:
    """Write progress fields with a fresh heartbeat (unthrottled; see `heartbeat_writer`)."""
    kind.model.objects.filter(pk=pk, status=kind.running).update(
        heartbeat_at=timezone.now(), **fields
    )


def heartbeat_writer(
    kind: JobKind, pk: int, interval: float = HEARTBEAT_SECONDS
) -> Callable[..., None]:
    """A progress callback that writes at most every `interval` seconds (and always when
    `final=True`), each write a heartbeat."""
    last = [0.0]

    def write(final: bool = False, **fields: Any) -> None:
        now = time.monotonic()
        if not final and now - last[0] < interval:
            return
        last[0] = now
        heartbeat(kind, pk, **fields)

    return write


def failure_reason(exc: BaseException) -> str:
    """What a person reads when a job failed on an unexpected error."""
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


@dataclass
class SweepOutcome:
    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def job_sweep(kind: JobKind) -> SweepOutcome:
    """Requeue (or fail, out of attempts) jobs with no sign of life for `stale_after`: running
    ones whose heartbeat stopped or whose worker process is gone, and queued ones whose
    message may be lost."""
    outcome = SweepOutcome()
    stale_before = timezone.now() - kind.stale_after
    quiet = kind.model.objects.annotate(last_sign=Coalesce("heartbeat_at", "created_at")).filter(
        Q(status=kind.running) | Q(status=kind.queued), last_sign__lt=stale_before
    )
    running = kind.model.objects.filter(status=kind.running).exclude(worker="")
    gone = [pk for pk, who in running.values_list("pk", "worker") if holder_is_gone(who)]
    for pk in sorted({*quiet.values_list("pk", flat=True), *gone}):
        with transaction.atomic():
            job = kind.model.objects.select_for_update().filter(pk=pk).first()
            if job is None or job.status not in (kind.queued, kind.running):
                continue
            last = job.heartbeat_at or job.created_at
            lost = job.status == kind.running and holder_is_gone(job.worker)
            if last >= stale_before and not lost:
                continue  # it moved while we looked
            if job.attempts >= kind.max_attempts:
                give_up = True
            else:
                give_up = False
                # queued again, marked as seen now: requeued at most once per stale_after
                kind.model.objects.filter(pk=pk).update(
                    status=kind.queued, heartbeat_at=timezone.now()
                )
                transaction.on_commit(lambda pk=pk: kind.requeue(pk), robust=True)
        if give_up:
            kind.fail(pk, f"the worker was lost {job.attempts} times; giving up")
            outcome.failed.append(pk)
        else:
            outcome.requeued.append(pk)
    if kind.waiting:
        outcome.requeued.extend(_resend_overdue(kind, stale_before))
    if outcome.requeued or outcome.failed:
        log.warning("sweep of %s jobs: requeued %s, failed %s", kind.name, outcome.requeued,
                    outcome.failed)  # fmt: skip
    return outcome


def _resend_overdue(kind: JobKind, stale_before: Any) -> list[int]:
    """Send the task again for waiting jobs due more than `stale_after` ago (their message
    was lost), at most once per `stale_after`; the task itself closes the wait."""
    overdue = Q(status=kind.waiting) & (
        Q(heartbeat_at__lt=stale_before)
        | Q(heartbeat_at__isnull=True, **{f"{kind.waiting_until}__lt": stale_before})
    )
    resent = []
    for pk in kind.model.objects.filter(overdue).values_list("pk", flat=True):
        with transaction.atomic():  # marked only if still overdue: one resend per sweep window
            if kind.model.objects.filter(overdue, pk=pk).update(heartbeat_at=timezone.now()):
                transaction.on_commit(lambda pk=pk: kind.requeue(pk), robust=True)
                resent.append(pk)
    return resent


# -- the Celery side ----------------------------------------------------------------------

JOB_TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,  # a lost worker's task is delivered again, and re-run
    "max_retries": 5,  # transient database errors
}


def job_task_run(task: Any, kind: JobKind, pk: int, work: Callable[[], Any]) -> Any:
    """Run a job's service in a Celery task: a busy job is delivered again once its holder's
    heartbeat would be stale; a transient error is retried with backoff up to the cap, then
    fails the job; any other error fails the job with its reason and is re-raised."""
    try:
        return work()
    except JobBusy as exc:
        raise task.retry(countdown=exc.retry_in, max_retries=None) from None
    except TRANSIENT_ERRORS as exc:
        if task.request.retries < task.max_retries:
            raise task.retry(exc=exc, countdown=min(60, 2 ** (task.request.retries + 1))) from exc
        _fail_quietly(kind, pk, f"the database kept failing: {failure_reason(exc)}")
        raise
    except Exception as exc:
        _fail_quietly(kind, pk, f"unexpected error ({failure_reason(exc)})")
        raise


def _fail_quietly(kind: JobKind, pk: int, reason: str) -> None:
    try:
        kind.fail(pk, reason)
    except Exception:  # the database may be the problem: the sweeper ends the job later
        log.exception("%s job %s could not be marked failed", kind.name, pk)
