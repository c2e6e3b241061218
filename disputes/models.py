"""Disputes: a rights holder (about its recordings) or a music maker (about its generation)
says an attribution or an ownership is wrong; the amounts in question are held in the ledger
until staff uphold the dispute (and correct it) or reject it, or its deadline passes.

A `Dispute` row is where a dispute stands (its status changes); what happened to it is the
`DisputeEvent` chain: one append-only, hash-chained record per step (opened, held, note,
upheld, rejected, expired), which the database refuses to change (migration 0001) and whose
hashing is documented in `disputes.chain`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from catalog.models import Recording, RightsHolder

HEX64 = r"^[0-9a-f]{64}$"


class Dispute(models.Model):
    class Subject(models.TextChoices):
        DIRECT_ATTRIBUTION = "direct_attribution", "Direct attribution (references and weights)"
        TDA_SHARES = "tda_shares", "Training-time attribution (TDA) shares"
        SIMILARITY_FLAG = "similarity_flag", "Similarity audit flag"
        OWNERSHIP = "ownership", "Ownership of a recording (master shares)"

    class Status(models.TextChoices):
        OPEN = "open", "Open (amounts held)"
        UPHELD = "upheld", "Upheld (corrected)"
        REJECTED = "rejected", "Rejected (hold released)"
        EXPIRED = "expired", "Expired (nobody acted by the deadline; hold released)"

    subject = models.CharField(max_length=24, choices=Subject.choices)
    # what is disputed, as one string: "<subject>:<generation ref>" or "ownership:<recording>";
    # at most one open dispute per item (constraint below)
    item = models.CharField(max_length=100)
    generation_ref = models.CharField(max_length=64, blank=True, db_index=True)
    generation_requested_by = models.BigIntegerField(
        null=True, blank=True, help_text="User id of the generation's maker (who may read it)."
    )
    recording = models.ForeignKey(
        Recording, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The recording in question (ownership; the holder's recording for TDA).",
    )  # fmt: skip
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    holder = models.ForeignKey(
        RightsHolder, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The rights holder its opener acts for; empty when the maker opened it.",
    )  # fmt: skip
    parties = models.ManyToManyField(
        RightsHolder, blank=True, related_name="+",
        help_text="Rights holders it concerns (they see it in their portal).",
    )  # fmt: skip
    reason = models.TextField()
    evidence_file = models.FileField(upload_to="disputes/evidence/", max_length=255, blank=True)
    evidence_name = models.CharField(max_length=255, blank=True)
    evidence_sha256 = models.CharField(max_length=64, blank=True)
    evidence_link = models.URLField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    deadline = models.DateTimeField(help_text="When the hold is released if nobody resolves it.")
    resolution_note = models.TextField(blank=True)
    correction = models.JSONField(default=dict, blank=True, help_text="What was corrected.")
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "deadline"], name="dispute_status_deadline")]
        constraints = [
            models.UniqueConstraint(
                fields=["item"], condition=Q(status="open"), name="dispute_one_open_per_item"
            ),
            models.CheckConstraint(
                condition=(Q(subject="ownership") & Q(recording__isnull=False, generation_ref=""))
                | (~Q(subject="ownership") & ~Q(generation_ref="")),
                name="dispute_subject_has_its_item",
            ),
            models.CheckConstraint(
                condition=Q(status="open", resolved_at__isnull=True)
                | (~Q(status="open") & Q(resolved_at__isnull=False)),
                name="dispute_resolved_iff_closed",
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="dispute_has_a_reason"),
        ]

    def __str__(self) -> str:
        return f"dispute {self.pk} ({self.get_subject_display()}, {self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


class DisputeEvent(models.Model):
    """One step of a dispute, appended by `disputes.services` only. `payload` says what
    happened (who, why, which ledger postings, what was corrected); `actor` is the user
    (`payload["actor"]` too, which is hashed), empty for the deadline."""

    class Kind(models.TextChoices):
        OPENED = "opened", "Opened"
        HELD = "held", "Amounts held"
        NOTE = "note", "Note"
        UPHELD = "upheld", "Upheld"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"

    sequence = models.BigAutoField(primary_key=True, help_text="Position in the chain.")
    dispute = models.ForeignKey(Dispute, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    payload = models.JSONField()
    payload_sha256 = models.CharField(max_length=64)
    previous_hash = models.CharField(max_length=64, help_text="record_hash of the predecessor.")
    record_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()  # set by the service: it is hashed

    class Meta:
        ordering = ["sequence"]
        constraints = [
            models.CheckConstraint(
                condition=Q(payload_sha256__regex=HEX64)
                & Q(previous_hash__regex=HEX64)
                & Q(record_hash__regex=HEX64),
                name="dispute_event_hashes_hex64",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.kind} of dispute {self.dispute_id}"
