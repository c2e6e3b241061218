"""The worker drill: real Celery pools (config/workers.py) on the configured database and
broker, a maker's generations submitted while training-time attribution runs, and SIGKILL
of a pool's whole process group while it holds a generation, a TDA stage or an audit.

Measures what docs/architecture.md promises: submit-to-running time while TDA runs, and that
every killed job ends succeeded or failed with a reason (none stays running) with no log
record or ledger transaction written twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count

from attribution.models import SimilarityAudit, TrainingAttribution
from attribution_log.models import AttributionRecord
from config.workers import POOLS, WorkerPool, beat_command, spawn
from generation.models import GenerationRequest
from generation.selectors import active_model_version, permitted_track_vectors
from generation.services.requests import GenerationAsk, generation_request_submit
from generation.verification import ReferenceSpec, references_verify
from royalties.models import LedgerTransaction

# A light TDA for the drill (the demo's Fisher and index take many minutes on 2 cores): the
# lifecycle is the same whatever the settings.
DRILL_TDA_CONFIG = {
    "method": "first_order", "fisher_items": 32, "projection_dim": 1024,
    "unlearn_timesteps": 16, "regime_probe_items": 3, "query_groups": 4,
}  # fmt: skip


@dataclass
class DrillConfig:
    kills: int = 3  # per kind of job
    latency_runs: int = 10
    seconds: float = 10.0  # of each generation
    sweep_seconds: float = 10.0
    timeout: float = 900.0  # for any one job to end after a kill
    kinds: tuple[str, ...] = ("generation", "generation-child", "tda", "audit")
    latency: bool = True
    state_dir: Path = field(default_factory=lambda: Path(settings.STATE_DIR) / "drill")


class Pools:
    """The pools as child process groups; a killed one is started again (a supervisor)."""

    def __init__(self, env: dict[str, str], state_dir: Path) -> None:
        self.env, self.state_dir = env, state_dir
        self.children: dict[str, subprocess.Popen] = {}
        self.logs = state_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _start(self, name: str, command: list[str], nice: int = 0) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.children[name] = spawn(
            command, cwd=settings.BASE_DIR, nice=nice, env=self.env, stdout=log, stderr=log
        )

    def start(self) -> None:
        for pool in POOLS:
            self._start(pool.name, pool.command(sys.executable), pool.nice)
        self._start("beat", beat_command(sys.executable, self.state_dir))
        threading.Thread(target=self._supervise, daemon=True).start()

    def _supervise(self) -> None:
        pools = {pool.name: pool for pool in POOLS}
        while not self._stop.wait(0.5):
            with self._lock:
                for name, child in list(self.children.items()):
                    if child.poll() is not None and name in pools:
                        pool: WorkerPool = pools[name]
                        self._start(name, pool.command(sys.executable), pool.nice)

    def kill(self, name: str) -> None:
        """SIGKILL the pool's whole process group (main process and its pool children)."""
        with self._lock:
            os.killpg(self.children[name].pid, signal.SIGKILL)
            self.children[name].wait()

    def stop(self) -> None:
        self._stop.set()
        for child in self.children.values():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in self.children.values():
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)


def _references(distribution: str) -> list[ReferenceSpec]:
    model_version = active_model_version()
    candidates = sorted(permitted_track_vectors(encoder_version=model_version.encoder))
    chosen = []
    for rid in candidates:
        spec = ReferenceSpec(rid, "song", "style", 1.0)
        verdict = references_verify(
            references=[spec], distribution=distribution, with_alternatives=False
        )
        if verdict.permitted:
            chosen.append(spec)
        if len(chosen) == 2:
            return chosen
    raise RuntimeError("the drill needs two recordings that permit private song-level use")


def _wait(predicate: Callable[[], object], timeout: float, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return None


class Drill:
    def __init__(self, config: DrillConfig, out: Callable[[str], None]) -> None:
        self.config, self.out = config, out
        self.maker, _ = get_user_model().objects.get_or_create(username="drill-maker")
        self.references = _references("private")
        self.refs: list[str] = []

    def submit(self) -> GenerationRequest:
        ask = GenerationAsk(
            references=self.references, distribution="private", seconds=self.config.seconds
        )
        generation, _ = generation_request_submit(user=self.maker, ask=ask)
        self.refs.append(generation.ref)
        return generation

    def latency(self) -> dict:
        """Submit-to-running of generations submitted while a TDA job runs."""
        first = self.submit()
        tda = _wait(
            lambda: TrainingAttribution.objects.filter(
                generation_ref=first.ref, status="running"
            ).first(),
            timeout=300,
        )
        if tda is None:
            raise RuntimeError("no training attribution started after the first generation")
        waits, during = [], []
        for _ in range(self.config.latency_runs):
            tda_running = TrainingAttribution.objects.filter(status="running").exists()
            if not tda_running:  # keep one running: a new generation brings its own job
                self.submit()
                _wait(lambda: TrainingAttribution.objects.filter(status="running").exists(), 300)
            generation = self.submit()
            running = _wait(
                lambda g=generation: GenerationRequest.objects.filter(
                    pk=g.pk, started_at__isnull=False
                ).first(),
                timeout=self.config.timeout,
            )
            waited = (running.started_at - running.created_at).total_seconds()
            during.append(TrainingAttribution.objects.filter(status="running").exists())
            waits.append(waited)
            self.out(f"  submit -> running {waited:6.2f} s (TDA running: {during[-1]})")
            _wait(lambda g=generation: _terminal_generation(g.pk), self.config.timeout)
        return {
            "runs": len(waits),
            "median_s": float(np.median(waits)),
            "p95_s": float(np.percentile(waits, 95)),
            "max_s": float(max(waits)),
            "tda_running_at_start": sum(during),
        }

    def kill_while(self, kind: str) -> dict:
        """One kill of the pool holding a job of `kind`; seconds until the job ended.
        `generation-child` kills only the pool's child process that runs the task (Celery's
        main process survives and requeues the task at once)."""
        generation = self.submit()
        child_only = kind == "generation-child"
        if kind in ("generation", "generation-child"):
            pool, model, key = "generation", GenerationRequest, {"pk": generation.pk}
        elif kind == "tda":
            pool, model, key = "background", TrainingAttribution, {"generation_ref": generation.ref}
        else:
            pool, model, key = "background", SimilarityAudit, {"generation_ref": generation.ref}
        # "running" with a heartbeat after the claim: the worker holds it, and is mid-way (a
        # generation denoising, a TDA job or an audit in a named stage)
        busy = {"progress_step": 0} if model is GenerationRequest else {"stage": ""}
        held = _wait(
            lambda: (
                model.objects.filter(**key, status="running", heartbeat_at__isnull=False)
                .exclude(**busy)
                .first()
            ),
            timeout=self.config.timeout,
            every=0.1,
        )
        if held is None:
            return {"kind": kind, "killed": False, "status": _status(model, key)}
        stage = getattr(held, "stage", "") or "generating"
        target = f"pool child {held.worker}" if child_only else f"the {pool} pool"
        self.out(f"  kill -9 {target} while a {kind} job is running ({stage})")
        killed_at = time.monotonic()
        if child_only:
            os.kill(int(held.worker.rpartition(":")[2]), signal.SIGKILL)
        else:
            self.pools.kill(pool)
        ended = _wait(
            lambda: model.objects.filter(**key, status__in=["succeeded", "done", "failed"]).first(),
            timeout=self.config.timeout,
            every=0.5,
        )
        row = {
            "kind": kind, "killed": True, "stage": stage,
            "status": ended.status if ended else _status(model, key),
            "reason": ended.failure_reason if ended else "",
            "seconds_to_end": round(time.monotonic() - killed_at, 1) if ended else None,
            "attempts": ended.attempts if ended else None,
        }  # fmt: skip
        self.out(
            f"    -> {row['status']} after {row['seconds_to_end']} s (attempts {row['attempts']})"
            + (f": {row['reason']}" if row["reason"] else "")
        )
        return row

    def duplicates(self) -> dict:
        records = (
            AttributionRecord.objects.filter(generation_ref__in=self.refs, kind="generation")
            .values("generation_ref")
            .annotate(n=Count("pk"))
            .filter(n__gt=1)
            .count()
        )
        fees = (
            LedgerTransaction.objects.filter(key__in=[f"generation:{r}:fee" for r in self.refs])
            .values("key")
            .annotate(n=Count("pk"))
            .filter(n__gt=1)
            .count()
        )
        settlements = (
            TrainingAttribution.objects.filter(generation_ref__in=self.refs)
            .exclude(settlement_ref="")
            .values("settlement_ref")
        )
        settled = LedgerTransaction.objects.filter(key__in=settlements).count()
        stuck = sum(
            model.objects.filter(**{field: self.refs}, status__in=["queued", "running"]).count()
            for model, field in (
                (GenerationRequest, "uid__in"),
                (TrainingAttribution, "generation_ref__in"),
                (SimilarityAudit, "generation_ref__in"),
            )
        )
        return {
            "generation_records_written_twice": records,
            "fees_posted_twice": fees,
            "tda_settlements": settled,
            "tda_jobs_settled": settlements.count(),
            "jobs_not_ended": stuck,
        }

    def run(self) -> dict:
        config = self.config
        env = {
            **os.environ,
            "TDA_ON_GENERATION": "1", "AUDIT_ON_GENERATION": "1",
            "TDA_CONFIG_JSON": json.dumps(DRILL_TDA_CONFIG), "TDA_COVERAGE": "first",
            "TDA_STATE_DIR": str(config.state_dir / "tda"),
            "JOB_SWEEP_SECONDS": str(config.sweep_seconds),
        }  # fmt: skip
        self.pools = Pools(env, config.state_dir)
        self.pools.start()
        report: dict = {"config": {k: str(v) for k, v in vars(config).items()}}
        try:
            if config.latency:
                self.out("latency: submit -> running while training-time attribution runs")
                report["latency"] = self.latency()
            report["kills"] = []
            for kind in config.kinds:
                for n in range(config.kills):
                    self.out(f"kill {n + 1}/{config.kills}: {kind}")
                    report["kills"].append(self.kill_while(kind))
            _wait(lambda: self.duplicates()["jobs_not_ended"] == 0, config.timeout, every=1.0)
            report["integrity"] = self.duplicates()
        finally:
            self.pools.stop()
        return report


def _terminal_generation(pk: int) -> bool:
    return GenerationRequest.objects.filter(pk=pk, status__in=["succeeded", "failed"]).exists()


def _status(model, key) -> str:
    row = model.objects.filter(**key).first()
    return row.status if row else "missing"
