"""Reads of disputes: what a generation is (from the attribution log and the ledger), who may
dispute what, who may read which dispute, what is held, and the events' chain check."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from attribution.models import SimilarityAudit, TrainingAttribution
from attribution_log.models import AttributionRecord
from attribution_log.selectors import ChainReport
from catalog.models import Recording, RightsHolder, RightsShare
from catalog.selectors import recordings_labels, user_holders
from config.exceptions import NotFound
from disputes.chain import GENESIS_HASH, event_digest, payload_digest
from disputes.models import Dispute, DisputeEvent
from royalties.models import Component, LedgerTransaction
from royalties.selectors import (
    generation_paid_by_recording,
    generation_payee_ids,
    held_minor,
    holders_names,
    recordings_holder_ids,
)

Kind = LedgerTransaction.Kind
FEE_PART = (Kind.GENERATION_FEE, Kind.FEE_CORRECTION)
TDA_PART = (Kind.TDA_SETTLEMENT, Kind.TDA_CORRECTION)


# -- what a generation is -------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationFacts:
    """A completed generation as disputes see it: its log record (references, maker), its
    fee (training set) and the state of its TDA and audit."""

    generation_ref: str
    record: AttributionRecord
    requested_by: int | None
    reference_ids: list[int]
    weights: dict[int, float]
    fee: LedgerTransaction | None
    training_ids: list[int] = field(default_factory=list)
    tda: TrainingAttribution | None = None
    audit: SimilarityAudit | None = None

    def holder_ids(self, recording_ids) -> set[int]:
        return {
            h for ids in recordings_holder_ids(recording_ids=recording_ids).values() for h in ids
        }

    @property
    def settled(self) -> bool:
        return LedgerTransaction.objects.filter(
            generation_ref=self.generation_ref, kind=Kind.TDA_SETTLEMENT, reversed_by__isnull=True
        ).exists()


def generation_facts(*, generation_ref: str) -> GenerationFacts:
    """NotFound when the log holds no completed generation by that id."""
    record = (
        AttributionRecord.objects.filter(
            generation_ref=generation_ref, kind=AttributionRecord.Kind.GENERATION
        )
        .order_by("sequence")
        .first()
    )
    if record is None:
        raise NotFound(f"generation {generation_ref} does not exist")
    weights: dict[int, float] = {}
    for ref in record.payload.get("references", []):
        rid = int(ref["recording"])
        weights[rid] = weights.get(rid, 0.0) + float(ref.get("weight", 0.0))
    fee = LedgerTransaction.objects.filter(key=f"generation:{generation_ref}:fee").first()
    return GenerationFacts(
        generation_ref=generation_ref,
        record=record,
        requested_by=record.payload.get("requested_by"),
        reference_ids=list(weights),
        weights=weights,
        fee=fee,
        training_ids=[int(r) for r in (fee.training_recording_ids if fee else [])],
        tda=TrainingAttribution.objects.filter(generation_ref=generation_ref).first(),
        audit=SimilarityAudit.objects.filter(generation_ref=generation_ref).first(),
    )


def generation_concerns(*, facts: GenerationFacts, holder_ids: set[int]) -> bool:
    """Whether any of the holders has a say in a recording the generation used or learned
    from, or was credited by it: only then may its members know the generation exists."""
    if not holder_ids:
        return False
    if facts.holder_ids([*facts.reference_ids, *facts.training_ids]) & holder_ids:
        return True
    return bool(generation_payee_ids(generation_ref=facts.generation_ref) & holder_ids)


def tda_paid(*, generation_ref: str) -> dict[int, int]:
    return generation_paid_by_recording(
        generation_ref=generation_ref, component=Component.TDA, kinds=TDA_PART
    )


def direct_paid(*, generation_ref: str) -> dict[int, int]:
    return generation_paid_by_recording(
        generation_ref=generation_ref, component=Component.ITA, kinds=FEE_PART
    )


def master_holder_ids(*, recording_id: int) -> dict[int, int]:
    return dict(
        RightsShare.objects.filter(recording_id=recording_id).values_list(
            "holder_id", "basis_points"
        )
    )


# -- who reads what -----------------------------------------------------------------------------


def _mine(user: AbstractBaseUser) -> Q:
    holders = user_holders(user=user).values("pk")
    return (
        Q(opened_by_id=user.pk)
        | Q(generation_requested_by=user.pk)
        | Q(holder__in=holders)
        | Q(parties__in=holders)
    )


def disputes_visible_to(*, user: AbstractBaseUser) -> QuerySet[Dispute]:
    """Staff read every dispute; others those they opened, those on their generations and
    those their rights holders opened or are concerned by."""
    disputes = Dispute.objects.select_related("recording", "holder", "opened_by", "resolved_by")
    if getattr(user, "is_staff", False):
        return disputes.order_by("-created_at", "-pk")
    ids = Dispute.objects.filter(_mine(user)).values("pk")
    return disputes.filter(pk__in=ids).order_by("-created_at", "-pk")


def dispute_readable_by(*, user: AbstractBaseUser, dispute_id: int) -> Dispute:
    """The dispute if `user` may read it; otherwise NotFound, as for an unknown id."""
    dispute = disputes_visible_to(user=user).filter(pk=dispute_id).first()
    if dispute is None:
        raise NotFound(f"dispute {dispute_id} does not exist")
    return dispute


def holder_disputes(*, holder: RightsHolder) -> QuerySet[Dispute]:
    """Disputes a holder opened or is concerned by, newest first."""
    ids = Dispute.objects.filter(Q(holder=holder) | Q(parties=holder)).values("pk")
    return (
        Dispute.objects.filter(pk__in=ids)
        .select_related("recording", "holder", "opened_by")
        .order_by("-created_at", "-pk")
    )


def dispute_held_minor(dispute: Dispute, *, holder_id: int | None = None) -> int:
    """What is held now on the disputed item (by this dispute or another reason)."""
    if dispute.subject == Dispute.Subject.OWNERSHIP:
        return held_minor(recording_id=dispute.recording_id, holder_id=holder_id)
    return held_minor(generation_ref=dispute.generation_ref, holder_id=holder_id)


@dataclass(frozen=True)
class DisputeSummary:
    """A dispute as lists show it (the receipt, the portal)."""

    dispute: Dispute
    held_minor: int
    recording_title: str


def summaries(disputes, *, holder_id: int | None = None) -> list[DisputeSummary]:
    disputes = list(disputes)
    labels = recordings_labels(recording_ids=[d.recording_id for d in disputes if d.recording_id])
    return [
        DisputeSummary(
            dispute=d,
            held_minor=dispute_held_minor(d, holder_id=holder_id) if d.is_open else 0,
            recording_title=labels.get(d.recording_id, ("", ""))[0] if d.recording_id else "",
        )
        for d in disputes
    ]


def generation_disputes_summary(*, generation_ref: str, user: AbstractBaseUser) -> list:
    """The disputes on a generation that `user` may read (the studio's receipt)."""
    disputes = disputes_visible_to(user=user).filter(generation_ref=generation_ref)
    return summaries(disputes)


def open_disputes() -> QuerySet[Dispute]:
    """For staff: open disputes, the nearest deadline first."""
    return (
        Dispute.objects.filter(status=Dispute.Status.OPEN)
        .select_related("recording", "holder", "opened_by")
        .order_by("deadline", "pk")
    )


def recordings_titles(recording_ids) -> dict[int, str]:
    return {
        pk: f"{title} · {artist}" if artist else title
        for pk, (title, artist) in recordings_labels(recording_ids=recording_ids).items()
    }


def recording_exists(recording_id: int) -> bool:
    return Recording.objects.filter(pk=recording_id).exists()


def names_of_holders(holder_ids) -> dict[int, str]:
    return holders_names(holder_ids=holder_ids)


# -- the chain ------------------------------------------------------------------------------------


def dispute_chain_verify(*, batch_size: int = 5000) -> ChainReport:
    """Recompute every event's payload hash, link and record hash in chain order; the first
    event that fails is reported (as the attribution log's check does)."""
    fields = ("sequence", "dispute_id", "kind", "payload", "payload_sha256", "previous_hash",
              "record_hash", "created_at")  # fmt: skip
    expected, last, checked = GENESIS_HASH, None, 0
    while True:
        rows = DisputeEvent.objects.order_by("sequence").values_list(*fields)
        if last is not None:
            rows = rows.filter(sequence__gt=last)
        batch = list(rows[:batch_size])
        for sequence, dispute_id, kind, payload, payload_sha, previous, record, created in batch:
            problem = ""
            if payload_digest(payload) != payload_sha:
                problem = "payload hash mismatch"
            elif previous != expected:
                problem = f"previous_hash does not link to event {last}"
            elif record != event_digest(
                sequence=sequence, dispute_id=dispute_id, kind=kind, created_at=created,
                previous_hash=previous, payload_sha256=payload_sha,
            ):  # fmt: skip
                problem = "record hash mismatch"
            if problem:
                return ChainReport(False, checked, sequence, problem, last, expected)
            checked, last, expected = checked + 1, sequence, record
        if len(batch) < batch_size:
            return ChainReport(True, checked, None, "", last, expected)


def dispute_events(dispute: Dispute) -> list[DisputeEvent]:
    return list(dispute.events.select_related("actor").order_by("sequence"))


def due_disputes(*, now: datetime) -> QuerySet[Dispute]:
    return Dispute.objects.filter(status=Dispute.Status.OPEN, deadline__lte=now).order_by(
        "deadline", "pk"
    )
