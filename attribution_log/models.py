"""Inference-time attribution (ITA) log: one append-only, hash-chained record per event.

Seed 004 (sections 3 and 5.3): the association between an output and its references is
certain, and every attribution and verification outcome is logged so rights holders can
check their payouts. Each record's `payload` says what was used (references with levels,
roles and weights, consent version ids, policy, model version, output hash, outcome...); a
`correction` record (a dispute upheld by staff) says what was corrected, from what to what,
and names the record it corrects by sequence and hash;
`payload["requested_by"]` is the id of the user who asked, which decides who may read it.

Records are written only by `attribution_log.services.attribution_record_append`. The
database refuses UPDATE, DELETE and TRUNCATE (attribution migration 0002, which created the
table), and each record's `record_hash` covers its predecessor's, so a change made by someone
who bypasses the guard shows up in `manage.py verify_attribution_log`. The hashing scheme is
documented in `attribution_log.chain`.
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
        # a dispute upheld: the corrected attribution, referencing the record it corrects
        # (records are never edited)
        CORRECTION = "correction", "Correction after an upheld dispute"

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
        db_table = "attribution_attributionrecord"  # the table it had in the attribution app
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
                condition=Q(
                    kind__in=["verification", "generation", "generation_failed", "correction"]
                ),
                name="ita_kind_known",
            ),
        ]

    def __str__(self) -> str:
        ref = f" {self.generation_ref}" if self.generation_ref else ""
        return f"#{self.sequence} {self.kind}{ref}"
