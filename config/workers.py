"""The worker topology: which Celery pools serve which queues, at what OS priority.

One definition for `make demo` (platform/local_stack.py), the worker drill and the docs
(docs/architecture.md); the production compose file runs the same pools. Plain Python, no
Django: the local stack reads it before settings exist.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class WorkerPool:
    name: str
    queues: tuple[str, ...]
    concurrency: int
    nice: int  # added OS niceness: background work yields the CPU to makers and the web
    why: str

    def command(self, python: str) -> list[str]:
        return [
            python, "-m", "celery", "-A", "config", "worker", "-Q", ",".join(self.queues),
            "--concurrency", str(self.concurrency), "--prefetch-multiplier", "1",
            "--loglevel", "INFO", "-n", f"{self.name}@%h",
        ]  # fmt: skip


POOLS = (
    WorkerPool(
        name="generation",
        queues=("generation",),
        concurrency=1,
        nice=0,
        why="a maker waits on it: never shares a worker with minutes-long jobs",
    ),
    WorkerPool(
        name="background",
        queues=("attribution", "audit", "embedding"),
        concurrency=1,
        nice=10,
        why="training-time attribution, the similarity audit and embeddings",
    ),
)


def spawn(command: list[str], *, cwd: Path, nice: int = 0, **popen: Any) -> subprocess.Popen:
    """Start a worker or beat in its own process group (so that it is stopped, or killed, as
    a whole) at the given added niceness."""
    return subprocess.Popen(
        command,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=(lambda: os.nice(nice)) if nice else None,
        **popen,
    )


def beat_command(python: str, state_dir: Path) -> list[str]:
    """Celery beat: the periodic job sweep (settings.CELERY_BEAT_SCHEDULE)."""
    return [
        python, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
        "--schedule", str(state_dir / "celerybeat-schedule"),
    ]  # fmt: skip
