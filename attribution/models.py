"""Inference-time attribution (ITA) log: one append-only, hash-chained record per event.

Seed 004 (sections 3 and 5.3): the association between an output and its references is
certain, and every attribution and verification outcome is logged so rights holders can
check their payouts. Each record's `payload` says what was used (references with levels,
roles and weights, consent version ids, policy, model version, output hash, outcome...);
`payload["requested_by"]` is the id of the user who asked, which decides who may read it.

Records are written only by `attribution.services.attribution_record_append`. The database
refuses UPDATE, DELETE and TRUNCATE (migration 0002), and each record's `record_hash` covers
its predecessor's, so a change made by someone who bypasses the guard shows up in
`manage.py verify_attribution_log`. The hashing scheme is documented in `attribution.chain`.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.fields.json import KeyTransform

HEX64 = r"^[0-9a-f]{64}$"


class AttributionRecord(models.Model):
    class Kind(models.TextChoices):
        VERIFICATION = "verification", "Verification outcome"
        GENERATION = "generation", "Completed generation"
        GENERATION_FAILED = "generation_failed", "Failed generation"

    sequence = models.BigAutoField(primary_key=True, help_text="Position in the chain.")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    generation_ref = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        help_text="Public id of the generation request; blank if none was made.",
    )
    payload = models.JSONField(help_text="What was used and decided; hashed canonically.")
    payload_sha256 = models.CharField(max_length=64)
    previous_hash = models.CharField(max_length=64, help_text="record_hash of the predecessor.")
    record_hash = models.CharField(max_length=64, unique=True)
    # Set by the service (not auto_now) because it is part of the hashed record.
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["sequence"]
        indexes = [
            # non-staff readers list the records they requested
            models.Index(KeyTransform("requested_by", "payload"), name="ita_requested_by"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(payload_sha256__regex=HEX64)
                & Q(previous_hash__regex=HEX64)
                & Q(record_hash__regex=HEX64),
                name="ita_hashes_are_hex64",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["verification", "generation", "generation_failed"]),
                name="ita_kind_known",
            ),
        ]

    def __str__(self) -> str:
        ref = f" {self.generation_ref}" if self.generation_ref else ""
        return f"#{self.sequence} {self.kind}{ref}"


class TrainingAttribution(models.Model):
    """Training-time attribution (TDA, seed 000) of one completed generation: a score per
    training recording of the model version that made it, and the normalised shares the
    royalty ledger splits the TDA pool by.

    Written only by `attribution.services.training`; the run's files (Fisher shared per model
    version, unlearned weights, scored chunks, result.json) live under settings.TDA_STATE_DIR.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Stage(models.TextChoices):
        WAITING = "", "Waiting"
        FISHER = "fisher", "Fisher information (once per model version)"
        UNLEARN = "unlearn", "Unlearning the generated sample"
        SCORE = "score", "Scoring the training recordings"
        SETTLE = "settle", "Normalising and settling the pool"

    generation_ref = models.CharField(max_length=64, unique=True)
    generation_requested_by = models.BigIntegerField(
        help_text="User id of who asked for the generation (who may read this)."
    )
    model_version_id = models.BigIntegerField(help_text="generation.ModelVersion id.")
    model_checkpoint_sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=10, choices=Stage.choices, blank=True, default="")
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    failure_reason = models.TextField(blank=True)
    config = models.JSONField(help_text="TDAConfig the scores were computed with.")
    # Complete results only (status done): {recording id: score}, shares by kind.
    scores = models.JSONField(null=True, blank=True)
    shares = models.JSONField(null=True, blank=True)
    payout_share_kind = models.CharField(max_length=16, blank=True)
    result_sha256 = models.CharField(max_length=64, blank=True)
    stats = models.JSONField(default=dict, blank=True, help_text="Fisher/unlearning/timings.")
    settlement_ref = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="done") | (Q(scores__isnull=False) & Q(shares__isnull=False)),
                name="tda_done_has_scores",
            ),
        ]

    def __str__(self) -> str:
        return f"TDA of {self.generation_ref} ({self.status})"
