"""Models of the attribution app: training-time attribution (TDA) jobs and the similarity
audit (clip embeddings, calibrations, audits). The inference-time attribution log lives in
its own app below generation (`attribution_log`).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from pgvector.django import HalfVectorField, HnswIndex

from catalog.models import EMBEDDING_DIM, EncoderVersion, Recording


class JobStatus(models.TextChoices):
    """Where a background attribution job (training-time attribution, similarity audit) is."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class TrainingAttribution(models.Model):
    """Training-time attribution (TDA, seed 000) of one completed generation: a score per
    training recording of the model version that made it, and the normalised shares the
    royalty ledger splits the TDA pool by.

    Written only by `attribution.services.training`; the run's files (Fisher shared per model
    version, unlearned weights, scored chunks, result.json) live under settings.TDA_STATE_DIR.
    """

    Status = JobStatus

    class Stage(models.TextChoices):
        WAITING = "", "Waiting"
        FISHER = "fisher", "Fisher information (once per model version)"
        INDEX = "index", "Index of training-window gradients (once per model version)"
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
    # "topk" (recordings that clear their noise), "unattributed" (none did: the pool stays
    # pending) or "flat" (none did: equal shares over the training set)
    payout_share_kind = models.CharField(max_length=16, blank=True)
    rule = models.JSONField(
        default=dict, blank=True, help_text="The payout settings in force when it was created."
    )
    evidence = models.JSONField(
        default=dict,
        blank=True,
        help_text="Per recording: standard errors, mean/max over windows, window counts; "
        "which cleared the noise; the run's regime check.",
    )
    result_sha256 = models.CharField(max_length=64, blank=True)
    stats = models.JSONField(default=dict, blank=True, help_text="Fisher/unlearning/timings.")
    settlement_ref = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last progress write.")
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid that claimed it.")
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


# -- corroborative similarity audit (seed 003) ---------------------------------------------------


class ClipEmbedding(models.Model):
    """One short clip (3 s by default) of a catalogue recording, embedded by one encoder version
    (seed 003 section 3.3.1). Kept apart from catalog's 10-s retrieval windows: retrieval and
    conditioning read every window of a recording, and must not see audit clips.

    Written by `attribution.services.audit` one recording per transaction (all its clips or
    none), so the presence of a recording's rows means that recording is complete."""

    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="+")
    encoder = models.ForeignKey(EncoderVersion, on_delete=models.PROTECT, related_name="+")
    clip_seconds = models.FloatField()
    hop_seconds = models.FloatField()
    start_seconds = models.FloatField()
    embedding = HalfVectorField(dimensions=EMBEDDING_DIM)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["recording", "encoder", "clip_seconds", "hop_seconds", "start_seconds"],
                name="clip_embedding_unique",
            ),
            models.CheckConstraint(
                condition=Q(clip_seconds__gt=0) & Q(hop_seconds__gt=0) & Q(start_seconds__gte=0),
                name="clip_embedding_positive",
            ),
        ]
        indexes = [
            HnswIndex(
                name="clip_embedding_hnsw",
                fields=["embedding"],
                m=32,
                ef_construction=128,
                opclasses=["halfvec_cosine_ops"],
            ),
            models.Index(
                fields=["encoder", "clip_seconds", "hop_seconds", "recording"],
                name="clip_embedding_space",
            ),
        ]

    def __str__(self) -> str:
        return f"clip of recording {self.recording_id} @ {self.start_seconds:g} s"


class ClipCalibration(models.Model):
    """Similarity thresholds of one encoder version and clip spec (seed 003 section 4.1): the
    Gaussian of top-neighbour similarities among random catalogue clips, and the mean of
    random clip pairs. The newest row of an (encoder, clip spec) is the one audits use."""

    encoder = models.ForeignKey(EncoderVersion, on_delete=models.PROTECT, related_name="+")
    clip_seconds = models.FloatField()
    hop_seconds = models.FloatField()
    clip_count = models.PositiveIntegerField()
    recording_count = models.PositiveIntegerField()
    sampled_clips = models.PositiveIntegerField()
    top_n = models.PositiveIntegerField(help_text="Neighbours per sampled clip in the fit.")
    mean = models.FloatField()
    std = models.FloatField()
    random_mean = models.FloatField()
    random_std = models.FloatField()
    thresholds = models.JSONField(help_text="random, mean, mean+1sigma, mean+2sigma.")
    histogram = models.JSONField(default=dict, blank=True)
    config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(
                fields=["encoder", "clip_seconds", "hop_seconds", "-created_at"],
                name="clip_calibration_recent",
            )
        ]

    def __str__(self) -> str:
        return f"calibration of {self.encoder_id} ({self.clip_seconds:g}s/{self.hop_seconds:g}s)"


class SimilarityAudit(models.Model):
    """The corroborative audit of one completed generation: its clips searched against every
    catalogue clip, the top-k recordings with their best clip pair, and a flag when a
    recording that was not a reference is at least as similar as the calibrated threshold.

    Written only by `attribution.services.audit`; read through `attribution.selectors`."""

    Status = JobStatus

    class Stage(models.TextChoices):
        WAITING = "", "Waiting"
        CLIPS = "clips", "Embedding the output's clips"
        CATALOGUE = "catalogue", "Embedding recordings without clips"
        SEARCH = "search", "Searching the catalogue's clips"

    generation_ref = models.CharField(max_length=64, unique=True)
    generation_requested_by = models.BigIntegerField(
        help_text="User id of who asked for the generation (who may read this)."
    )
    model_version_id = models.BigIntegerField(help_text="generation.ModelVersion id.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=10, choices=Stage.choices, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    failure_reason = models.TextField(blank=True)
    encoder = models.ForeignKey(
        EncoderVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    calibration = models.ForeignKey(
        ClipCalibration, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    clip_seconds = models.FloatField(null=True, blank=True)
    hop_seconds = models.FloatField(null=True, blank=True)
    top_k = models.PositiveSmallIntegerField(default=10)
    threshold_name = models.CharField(max_length=32, blank=True)
    threshold_value = models.FloatField(null=True, blank=True)
    output_clip_count = models.PositiveIntegerField(default=0)
    output_sha256 = models.CharField(max_length=64, blank=True)
    reference_ids = models.JSONField(default=list, blank=True)
    # Each reference's best clip pair with the output (whether or not it is in the top k).
    reference_scores = models.JSONField(default=dict, blank=True)
    # The second score (settings.AUDIT_MELODY_ENCODER): the melody signal's own top k, flags
    # and reference scores against its own calibration; {} when off, {"error": ...} when it
    # could not run (the audit above stands).
    melody = models.JSONField(default=dict, blank=True)
    # Which recordings were searched: catalogue size, searched, and any that had no clips
    # and could not be embedded (named, never silently skipped).
    coverage = models.JSONField(default=dict, blank=True)
    flagged = models.BooleanField(default=False)
    payouts_held = models.BooleanField(
        default=False, help_text="The flag held the generation's payouts for review."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last progress write.")
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid that claimed it.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["flagged", "-created_at"], name="audit_flagged_recent")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="done")
                | (Q(threshold_value__isnull=False) & Q(calibration__isnull=False)),
                name="audit_done_has_threshold",
            ),
            models.CheckConstraint(
                condition=Q(flagged=False) | Q(status="done"), name="audit_flag_only_when_done"
            ),
        ]

    def __str__(self) -> str:
        flag = ", flagged" if self.flagged else ""
        return f"similarity audit of {self.generation_ref} ({self.status}{flag})"


class SimilarityMatch(models.Model):
    """One of an audit's top-k recordings: its best clip pair with the output."""

    audit = models.ForeignKey(SimilarityAudit, on_delete=models.CASCADE, related_name="matches")
    rank = models.PositiveSmallIntegerField()
    recording = models.ForeignKey(Recording, on_delete=models.PROTECT, related_name="+")
    similarity = models.FloatField()
    output_start_seconds = models.FloatField()
    recording_start_seconds = models.FloatField()
    is_reference = models.BooleanField()
    in_training_set = models.BooleanField()
    flagged = models.BooleanField(help_text="Not a reference and at or above the threshold.")

    class Meta:
        ordering = ["audit", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["audit", "rank"], name="audit_match_rank"),
            models.UniqueConstraint(fields=["audit", "recording"], name="audit_match_recording"),
        ]

    def __str__(self) -> str:
        return f"#{self.rank} recording {self.recording_id}: {self.similarity:.3f}"


class ModelUnlearning(models.Model):
    """Removing recordings whose training consent was revoked from the served generator
    (attribution/services/unlearning.py). Revocations within a short window are batched into
    one pending job; the result is a new model version, served only once verified."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting (revocations are batched)"
        QUEUED = "queued", "Waiting for a worker"  # the batch closed (or the sweeper requeued)
        RUNNING = "running", "Removing"
        SERVED = "served", "Verified and served"
        FAILED = "failed", "Failed (not served; the model stays withdrawn)"
        CANCELLED = "cancelled", "Cancelled"

    source_model_version = models.ForeignKey(
        "generation.ModelVersion", on_delete=models.PROTECT, related_name="+"
    )
    recording_ids = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    not_before = models.DateTimeField(help_text="revocations until then join this job")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    result_model_version = models.ForeignKey(
        "generation.ModelVersion", null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )  # fmt: skip
    report = models.JSONField(default=dict, blank=True, help_text="settings and verification")
    failure_reason = models.CharField(max_length=500, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    # the job lifecycle (jobs/lifecycle.py): claims, heartbeat, holder
    attempts = models.PositiveSmallIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last progress write.")
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid that claimed it.")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_model_version"],
                condition=Q(status="pending"),
                name="one_pending_unlearning_per_model",
            )
        ]

    def __str__(self) -> str:
        return f"unlearning {self.pk} of {self.recording_ids} from {self.source_model_version_id}"
