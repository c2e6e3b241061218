"""Generation: model versions (with training manifests), requests and their references.

A request is verified against consent when it is submitted and again when the worker starts;
its references keep the consent version ids each verification relied on. The model itself
lives in `generation.model` (plain torch); a `ModelVersion` row is its registered checkpoint.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from catalog.models import Distribution, EncoderVersion, Level, Recording


class ModelVersion(models.Model):
    """A trained generator checkpoint and the manifest of what it learned from.

    The manifest lists every training recording with the consent version ids in force when it
    was trained, its audio hash and how it was cropped and padded, so training-time attribution
    and auxiliary royalties can name them and a later revocation can be detected.
    """

    name = models.CharField(max_length=64)
    version = models.CharField(max_length=64)
    config = models.JSONField(default=dict, help_text="Generator config the model is rebuilt from.")
    checkpoint_path = models.CharField(max_length=500)
    checkpoint_sha256 = models.CharField(max_length=64)
    encoder = models.ForeignKey(
        EncoderVersion,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The CLAP encoder whose embeddings condition this model.",
    )
    training_manifest = models.JSONField(default=dict)
    training_recording_ids = models.JSONField(default=list)
    quality = models.JSONField(default=dict, blank=True, help_text="Conditioning measurements.")
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="model_version_unique"),
            models.UniqueConstraint(
                fields=["is_active"],
                condition=models.Q(is_active=True),
                name="one_active_model_version",
            ),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


class GenerationRequest(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    key = models.CharField(
        max_length=100, blank=True, help_text="Client idempotency key (unique per user)."
    )
    fingerprint = models.CharField(max_length=64, help_text="Hash of what was asked for.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="generation_requests"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    distribution = models.CharField(max_length=16, choices=Distribution.choices)
    seconds = models.FloatField(validators=[MinValueValidator(0.5)])
    prompt = models.CharField(max_length=500, blank=True)
    seed = models.BigIntegerField()
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")

    upload = models.FileField(upload_to="generation/uploads/", max_length=255, blank=True)
    upload_sha256 = models.CharField(max_length=64, blank=True)
    strength = models.FloatField(null=True, blank=True, help_text="SDEdit noise level (audio).")
    segment_start = models.FloatField(null=True, blank=True, help_text="Temporal level (s).")
    segment_end = models.FloatField(null=True, blank=True)

    verified_at = models.DateTimeField()
    verification_record_hash = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last progress write.")
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid that claimed it.")
    attempts = models.PositiveSmallIntegerField(default=0)
    progress_step = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    failure_reason = models.TextField(blank=True)

    output = models.FileField(upload_to="generation/outputs/", max_length=255, blank=True)
    output_sha256 = models.CharField(max_length=64, blank=True)
    # The sampled log-mel the audio was rendered from (.npy): training-time attribution
    # unlearns exactly this sample, not a re-analysis of the rendered audio.
    sample = models.FileField(upload_to="generation/samples/", max_length=255, blank=True)
    sample_sha256 = models.CharField(max_length=64, blank=True)
    generation_record_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["requested_by", "key"],
                condition=~models.Q(key=""),
                name="generation_key_unique_per_user",
            )
        ]
        indexes = [models.Index(fields=["requested_by", "-created_at"])]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"generation {self.uid} ({self.status})"

    @property
    def ref(self) -> str:
        """The id other apps (attribution log, ledger) know this generation by."""
        return str(self.uid)


class GenerationReference(models.Model):
    request = models.ForeignKey(
        GenerationRequest, on_delete=models.CASCADE, related_name="references"
    )
    position = models.PositiveSmallIntegerField()
    recording = models.ForeignKey(Recording, on_delete=models.PROTECT, related_name="+")
    level = models.CharField(max_length=16, choices=Level.choices)
    role = models.CharField(max_length=32)
    weight = models.FloatField()
    segment_start = models.FloatField(null=True, blank=True)
    segment_end = models.FloatField(null=True, blank=True)
    consent_version_ids = models.JSONField(
        default=list, help_text="Consent versions the submission verification relied on."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["request", "position"], name="reference_position")
        ]
        ordering = ["position"]

    def __str__(self) -> str:
        return f"{self.level}/{self.role} x{self.weight} -> recording {self.recording_id}"
