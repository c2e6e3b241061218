"""Writes of disputes: open one (its amounts held at once), add a note, resolve it (upheld with a
correction, or rejected), expire the ones past their deadline; and which payouts the reasons in
force want held (`holds_wanted`, the function royalties asks through ROYALTIES_HOLDS_WANTED).

Who may open what (anyone else: 404 for a generation they are not concerned by, 403 for a
recording they hold no share in):

- the maker of a generation: its direct attribution, TDA shares or similarity flag;
- a member of a rights holder with a say (master, or writer or publisher of a work it embodies)
  in a recording the generation used or learned from: its direct attribution (a reference
  of theirs), its TDA shares (naming their recording in its training set), its similarity
  flag (while the flag holds payouts);
- a member of a master holder of a recording: its ownership (master shares).

What is held while a dispute is open (every hold a balanced posting; a posting is never held
twice, however many reasons want it; see `royalties.services.holds`):

- direct attribution: the fee and its corrections, whole (the fee is one posting: its
  auxiliary part is held with the direct part);
- TDA shares: the generation's TDA settlement and its corrections;
- similarity flag: everything the audit's flag holds (the dispute asks for its release);
- ownership: what the recording's master holders are owed on it in months without a closed
  statement, in every generation, and what it earns while the dispute is open.

Closing a dispute releases what no other reason (an audit flag, another open dispute) wants.
Every step is a `DisputeEvent` in one hash chain; an upheld correction is also appended to the
attribution log as a `correction` record naming the record it corrects.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.core.validators import URLValidator
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from attribution.models import SimilarityAudit
from attribution_log.models import AttributionRecord
from attribution_log.services import attribution_record_append, chain_next, stored_form
from catalog.models import RightsHolder
from catalog.selectors import holder_readable_by, recording_get, user_holders
from catalog.services.rights import rights_shares_set
from config.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from disputes import selectors
from disputes.chain import event_digest, payload_digest
from disputes.models import Dispute, DisputeEvent
from royalties.models import LedgerEntry, LedgerTransaction
from royalties.selectors import generation_payee_ids, recordings_holder_ids
from royalties.services import (
    fee_direct_correct,
    generation_holds_reconcile,
    recording_master_correct,
    tda_settlement_correct,
)
from royalties.services.corrections import recording_master_entries
from royalties.services.holds import HOLDABLE_KINDS, payable_entries

Subject = Dispute.Subject
Status = Dispute.Status
MAX_TEXT = 4000
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# pg_advisory_xact_lock key of the dispute chain ("DISPUTE" in ASCII)
CHAIN_LOCK_KEY = 0x44_49_53_50_55_54_45


# -- the chain -----------------------------------------------------------------------------------


def dispute_event_append(
    *, dispute: Dispute, kind: str, actor: AbstractBaseUser | None, payload: dict[str, Any]
) -> DisputeEvent:
    """Append one event to the chain (serialised by an advisory lock held to commit, as the
    attribution log's appends are)."""
    stored = stored_form({**payload, "actor": actor.pk if actor else None}, "dispute record")
    payload_sha256 = payload_digest(stored)
    table = DisputeEvent._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        sequence, previous_hash = chain_next(
            cursor, table=table, lock_key=CHAIN_LOCK_KEY, name="dispute chain"
        )
        created_at = timezone.now()
        event = DisputeEvent(
            sequence=sequence,
            dispute=dispute,
            kind=kind,
            actor=actor,
            payload=stored,
            payload_sha256=payload_sha256,
            previous_hash=previous_hash,
            created_at=created_at,
            record_hash=event_digest(
                sequence=sequence,
                dispute_id=dispute.pk,
                kind=kind,
                created_at=created_at,
                previous_hash=previous_hash,
                payload_sha256=payload_sha256,
            ),
        )
        event.save(force_insert=True)
    return event


# -- input ---------------------------------------------------------------------------------------


def _text(value: object, name: str, *, required: bool = True) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if required and not text:
        raise InvalidInput(f"a {name} is required", details={name: "required"})
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"the {name} is longer than {MAX_TEXT} characters")
    if CONTROL.search(text):
        raise InvalidInput(f"the {name} contains control characters")
    return text


def _link(value: object) -> str:
    link = value.strip() if isinstance(value, str) else ""
    if not link:
        return ""
    if len(link) > 500:
        raise InvalidInput("the evidence link is longer than 500 characters")
    try:
        URLValidator(schemes=["http", "https"])(link)
    except ValidationError:
        raise InvalidInput(
            "the evidence link must be an http(s) address", details={"evidence_link": link[:100]}
        ) from None
    return link


def _evidence(file) -> tuple[str, str, int]:
    """(safe name, SHA-256, size) of an uploaded evidence file; too large is refused."""
    if file.size > settings.DISPUTE_MAX_EVIDENCE_BYTES:
        raise InvalidInput(
            f"the evidence file is larger than {settings.DISPUTE_MAX_EVIDENCE_BYTES} bytes"
        )
    digest = hashlib.sha256()
    for chunk in file.chunks():
        digest.update(chunk)
    file.seek(0)
    name = get_valid_filename((file.name or "evidence").rsplit("/", 1)[-1])[-100:] or "evidence"
    return name, digest.hexdigest(), file.size


# -- who may open what ---------------------------------------------------------------------------


def _acting_holder(user: AbstractBaseUser, holder_id: int | None) -> RightsHolder | None:
    if holder_id is None:
        return None
    return holder_readable_by(user=user, holder_id=holder_id)  # 404 for a non-member


def _generation_for(user, generation_ref: str, holder: RightsHolder | None):
    """The generation's facts, if `user` may know of it (its maker, staff, or a member of a
    holder it concerns); otherwise 404 as for an unknown id."""
    if not generation_ref:
        raise InvalidInput("name the generation in question", details={"generation": "required"})
    facts = selectors.generation_facts(generation_ref=generation_ref)
    mine = {h.pk for h in user_holders(user=user)} if holder is None else {holder.pk}
    if not (
        user.is_staff
        or facts.requested_by == user.pk
        or selectors.generation_concerns(facts=facts, holder_ids=mine)
    ):
        raise NotFound(f"generation {generation_ref} does not exist")
    if facts.fee is None or hasattr(facts.fee, "reversed_by"):
        raise Conflict(f"generation {generation_ref} has no fee in force; nothing is in question")
    if holder is None and facts.requested_by != user.pk:
        raise InvalidInput(
            "name the rights holder you act for (holder), or dispute your own generation",
            details={"holder": "required"},
        )
    return facts


def _say(holder: RightsHolder, recording_ids) -> set[int]:
    """The recordings among `recording_ids` that `holder` has a say in."""
    return {rid for rid, ids in recordings_holder_ids(recording_ids=recording_ids).items()
            if holder.pk in ids}  # fmt: skip


def _check_generation_subject(subject, facts, holder, recording_id) -> tuple[int | None, set]:
    """Whether `holder` (None: the maker) may dispute this; returns (recording, parties)."""
    ref = facts.generation_ref
    if subject == Subject.DIRECT_ATTRIBUTION:
        if holder is not None and not _say(holder, facts.reference_ids):
            raise Forbidden(f"rights holder '{holder.name}' holds no reference of generation {ref}")
        return None, facts.holder_ids(facts.reference_ids)
    if subject == Subject.TDA_SHARES:
        if not (facts.settled or (facts.tda and facts.tda.status == "done")):
            raise Conflict(f"the training-time attribution of generation {ref} is not done yet")
        if holder is not None and recording_id is None:
            raise InvalidInput(
                "name your recording whose TDA share you dispute",
                details={"recording": "required"},
            )
        if recording_id is not None:
            recording = recording_get(recording_id=recording_id)
            if holder is not None and not _say(holder, [recording.pk]):
                raise Forbidden(
                    f"rights holder '{holder.name}' has no share in recording {recording.pk}"
                )
            if recording.pk not in facts.training_ids:
                raise Forbidden(
                    f"recording {recording.pk} is not in the training attribution of "
                    f"generation {ref} (the model was not trained on it)"
                )
        paid = set(selectors.tda_paid(generation_ref=ref))
        return recording_id, facts.holder_ids(paid | ({recording_id} if recording_id else set()))
    # the similarity flag
    audit = facts.audit
    if audit is None or not audit.flagged:
        raise Conflict(f"the similarity audit did not flag generation {ref}; nothing to dispute")
    if not audit.payouts_held:
        raise Conflict(f"the payouts of generation {ref} are not held for the flag any more")
    payees = generation_payee_ids(generation_ref=ref)
    if holder is not None and holder.pk not in payees | facts.holder_ids(facts.reference_ids):
        raise Forbidden(f"generation {ref} pays rights holder '{holder.name}' nothing")
    return None, payees


# -- holds ---------------------------------------------------------------------------------------


def holds_wanted(source: LedgerTransaction) -> list[LedgerEntry]:
    """The payable entries of `source` that the reasons in force want held: all of them while
    its generation's audit flag holds payouts or an open dispute questions its part (the fee's
    or the TDA pool's); else those of recordings whose ownership is disputed."""
    entries = payable_entries(source)
    if not entries or source.kind not in HOLDABLE_KINDS:
        return []
    ref = source.generation_ref
    if SimilarityAudit.objects.filter(generation_ref=ref, payouts_held=True).exists():
        return entries
    subjects = set(
        Dispute.objects.filter(generation_ref=ref, status=Status.OPEN).values_list(
            "subject", flat=True
        )
    )
    whole = {Subject.SIMILARITY_FLAG} | (
        {Subject.DIRECT_ATTRIBUTION} if source.kind in selectors.FEE_PART else {Subject.TDA_SHARES}
    )
    if subjects & whole:
        return entries
    disputed = Dispute.objects.filter(
        status=Status.OPEN,
        subject=Subject.OWNERSHIP,
        recording_id__in={e.recording_id for e in entries if e.recording_id},
    ).values_list("recording_id", flat=True)
    return [
        entry
        for rid in sorted(set(disputed))
        for entry in recording_master_entries(sources=[source], recording_id=rid)
    ]


def _ownership_generations(recording_id: int) -> list[str]:
    """Generations with live postings or holds that credit the recording."""
    refs = (
        LedgerEntry.objects.filter(recording_id=recording_id, transaction__reversed_by__isnull=True)
        .exclude(generation_ref="")
        .filter(transaction__kind__in=[*HOLDABLE_KINDS, LedgerTransaction.Kind.PAYOUT_HOLD])
        .values_list("generation_ref", flat=True)
        .distinct()
    )
    return sorted(set(refs))


def _reconcile(dispute: Dispute, *, reason: str, actor) -> list[dict]:
    """Make the holds of the disputed item match the reasons in force; returns them."""
    refs = (
        _ownership_generations(dispute.recording_id)
        if dispute.subject == Subject.OWNERSHIP
        else [dispute.generation_ref]
    )
    holds = []
    for ref in refs:
        for hold in generation_holds_reconcile(generation_ref=ref, reason=reason, actor=actor):
            holds.append({"key": hold.key, "held_minor": _held_in(hold)})
    return holds


def _held_in(hold: LedgerTransaction) -> int:
    return sum(
        hold.entries.filter(account__kind="holder_payable").values_list("amount_minor", flat=True)
    )


# -- opening -------------------------------------------------------------------------------------


def dispute_open(
    *,
    user: AbstractBaseUser,
    subject: str,
    reason: str,
    generation_ref: str = "",
    recording_id: int | None = None,
    holder_id: int | None = None,
    evidence_file=None,
    evidence_link: str = "",
) -> Dispute:
    """Open a dispute and hold the amounts in question at once; refused with a reason (and
    nothing written) when it is not the user's to open, or the item is already disputed."""
    if subject not in Subject.values:
        raise InvalidInput(
            f"unknown dispute subject '{subject}'",
            details={"subject": subject, "expected": Subject.values},
        )
    reason = _text(reason, "reason")
    evidence_link = _link(evidence_link)
    evidence = _evidence(evidence_file) if evidence_file is not None else None
    generation_ref = str(generation_ref or "").strip()
    holder = _acting_holder(user, holder_id)
    with transaction.atomic():
        if subject == Subject.OWNERSHIP:
            if holder is None:
                raise InvalidInput(
                    "an ownership dispute is opened for a rights holder of the recording: "
                    "name it (holder)",
                    details={"holder": "required"},
                )
            if recording_id is None:
                raise InvalidInput(
                    "name the recording in question", details={"recording": "required"}
                )
            recording = recording_get(recording_id=recording_id)
            if holder.pk not in selectors.master_holder_ids(recording_id=recording.pk):
                raise Forbidden(
                    f"rights holder '{holder.name}' has no master share in recording {recording.pk}"
                )
            item, requested_by, generation_ref = f"ownership:{recording.pk}", None, ""
            parties = recordings_holder_ids(recording_ids=[recording.pk])[recording.pk]
        else:
            facts = _generation_for(user, generation_ref, holder)
            recording_id, parties = _check_generation_subject(subject, facts, holder, recording_id)
            item, requested_by = f"{subject}:{generation_ref}", facts.requested_by
        if Dispute.objects.filter(item=item, status=Status.OPEN).exists():
            raise Conflict(f"{_item_label(subject)} is already disputed; add to that dispute")
        now = timezone.now()
        try:
            with transaction.atomic():
                dispute = Dispute.objects.create(
                    subject=subject,
                    item=item,
                    generation_ref=generation_ref,
                    generation_requested_by=requested_by,
                    recording_id=recording_id,
                    opened_by=user,
                    holder=holder,
                    reason=reason,
                    evidence_link=evidence_link,
                    deadline=now + timedelta(days=settings.DISPUTE_AUTO_RELEASE_DAYS),
                )
        except IntegrityError:  # opened concurrently by someone else
            raise Conflict(f"{_item_label(subject)} is already disputed") from None
        dispute.parties.set(sorted(parties | ({holder.pk} if holder else set())))
        dispute_event_append(
            dispute=dispute,
            kind=DisputeEvent.Kind.OPENED,
            actor=user,
            payload={
                "dispute": dispute.pk,
                "subject": subject,
                "generation": generation_ref,
                "recording": recording_id,
                "holder": holder.pk if holder else None,
                "reason": reason,
                "evidence": (
                    {"name": evidence[0], "sha256": evidence[1], "bytes": evidence[2]}
                    if evidence
                    else None
                ),
                "evidence_link": evidence_link,
                "deadline": dispute.deadline.isoformat(),
                "parties": sorted(parties),
            },
        )
        holds = _reconcile(dispute, reason=f"dispute {dispute.pk}: {reason}"[:300], actor=user)
        dispute_event_append(
            dispute=dispute,
            kind=DisputeEvent.Kind.HELD,
            actor=user,
            payload={
                "holds": holds,
                "held_minor": selectors.dispute_held_minor(dispute),
            },
        )
        if evidence is not None:  # last: a failure before this leaves no file behind
            dispute.evidence_name, dispute.evidence_sha256 = evidence[0], evidence[1]
            dispute.evidence_file.save(f"{dispute.pk}-{evidence[0]}", File(evidence_file))
    return dispute


def _item_label(subject: str) -> str:
    return {
        Subject.DIRECT_ATTRIBUTION: "this generation's direct attribution",
        Subject.TDA_SHARES: "this generation's TDA shares",
        Subject.SIMILARITY_FLAG: "this generation's similarity flag",
        Subject.OWNERSHIP: "this recording's ownership",
    }[subject]


def _may_take_part(user: AbstractBaseUser, dispute: Dispute) -> bool:
    return user.is_staff or selectors.disputes_visible_to(user=user).filter(pk=dispute.pk).exists()


@transaction.atomic
def dispute_note_add(
    *, user: AbstractBaseUser, dispute_id: int, note: str, evidence_link: str = ""
) -> DisputeEvent:
    """A party (or staff) adds a note, with an optional link, to an open dispute."""
    dispute = selectors.dispute_readable_by(user=user, dispute_id=dispute_id)
    note, evidence_link = _text(note, "note"), _link(evidence_link)
    dispute = Dispute.objects.select_for_update().get(pk=dispute.pk)
    if not dispute.is_open:
        raise Conflict(f"dispute {dispute.pk} is {dispute.status}; it takes no more notes")
    return dispute_event_append(
        dispute=dispute,
        kind=DisputeEvent.Kind.NOTE,
        actor=user,
        payload={"note": note, "evidence_link": evidence_link},
    )


# -- resolving -----------------------------------------------------------------------------------


def _shares(values: Mapping | None, name: str) -> dict[int, float]:
    if not values:
        raise InvalidInput(f"an upheld dispute of this kind needs corrected {name}",
                           details={name: "required"})  # fmt: skip
    clean = {}
    for key, value in values.items():
        try:
            rid = int(key)
        except (TypeError, ValueError):
            raise InvalidInput(f"{name} are keyed by recording id, not {key!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"the {name[:-1]} of recording {rid} is not a number")
        clean[rid] = value
    return clean


def _master_shares(values: Mapping | None) -> dict[RightsHolder, int]:
    if not values:
        raise InvalidInput("an upheld ownership dispute needs corrected master shares",
                           details={"master_shares": "required"})  # fmt: skip
    shares = {}
    for key, value in values.items():
        try:
            holder_id = int(key)
        except (TypeError, ValueError):
            raise InvalidInput(f"master shares are keyed by holder id, not {key!r}") from None
        holder = RightsHolder.objects.filter(pk=holder_id).first()
        if holder is None:
            raise InvalidInput(f"rights holder {holder_id} does not exist")
        shares[holder] = value
    return shares


def _was_now(paid: dict[int, int]) -> dict[str, int]:
    return {str(rid): amount for rid, amount in sorted(paid.items())}


def dispute_resolve(
    *,
    actor: AbstractBaseUser,
    dispute_id: int,
    outcome: str,
    note: str,
    shares: Mapping | None = None,
    weights: Mapping | None = None,
    master_shares: Mapping | None = None,
) -> Dispute:
    """Staff close an open dispute. Upheld: the correction its subject asks for (corrected
    TDA shares, reference weights or master shares; for a similarity flag, the audit's hold is
    lifted), recorded in the attribution log. Rejected: nothing changes but the holds this
    dispute alone wanted, which are released. Either way the chain records it."""
    if not getattr(actor, "is_staff", False):
        raise Forbidden("only staff can resolve disputes")
    if outcome not in (Status.UPHELD, Status.REJECTED):
        raise InvalidInput("the outcome is 'upheld' or 'rejected'", details={"outcome": outcome})
    note = _text(note, "resolution note")
    with transaction.atomic():
        dispute = Dispute.objects.select_for_update().filter(pk=dispute_id).first()
        if dispute is None:
            raise NotFound(f"dispute {dispute_id} does not exist")
        if not dispute.is_open:
            raise Conflict(f"dispute {dispute.pk} is already {dispute.status}")
        now = timezone.now()
        Dispute.objects.filter(pk=dispute.pk).update(
            status=outcome, resolution_note=note, resolved_by=actor, resolved_at=now
        )
        dispute.refresh_from_db()
        correction, record = {}, None
        if outcome == Status.UPHELD:
            correction = _correct(dispute, actor=actor, note=note, shares=shares,
                                  weights=weights, master_shares=master_shares)  # fmt: skip
            record = _log_correction(dispute, actor=actor, note=note, correction=correction)
            Dispute.objects.filter(pk=dispute.pk).update(correction=correction)
        holds = _reconcile(dispute, reason=f"dispute {dispute.pk} {outcome}: {note}"[:300],
                           actor=actor)  # fmt: skip
        dispute_event_append(
            dispute=dispute,
            kind=outcome,
            actor=actor,
            payload={
                "note": note,
                "correction": correction,
                "attribution_record": (
                    {"sequence": record.sequence, "record_hash": record.record_hash}
                    if record
                    else None
                ),
                "holds_in_force": holds,
                "held_minor": selectors.dispute_held_minor(dispute),
            },
        )
    dispute.refresh_from_db()
    return dispute


def _credited(keys: list[str]) -> set[int]:
    return set(
        LedgerEntry.objects.filter(transaction__key__in=keys, holder__isnull=False)
        .values_list("holder_id", flat=True)
        .distinct()
    )


def _correct(dispute: Dispute, *, actor, note, shares, weights, master_shares) -> dict:
    """Apply an upheld dispute's correction to the ledger (and the catalogue, for ownership);
    returns what was corrected, from what to what, and the postings."""
    ref = dispute.generation_ref
    if dispute.subject == Subject.TDA_SHARES:
        shares = _shares(shares, "shares")
        was = selectors.tda_paid(generation_ref=ref)
        reversals, settlement = tda_settlement_correct(
            actor=actor, generation_ref=ref, shares=shares, reason=note
        )
        now = selectors.tda_paid(generation_ref=ref)
        posted = [settlement.key]
        correction = {
            "subject": dispute.subject,
            "shares": {str(k): v for k, v in sorted(shares.items())},
            "was_paid_minor": _was_now(was),
            "now_paid_minor": _was_now(now),
            "reversed": [r.reverses.key for r in reversals],
            "posted": posted,
        }
    elif dispute.subject == Subject.DIRECT_ATTRIBUTION:
        weights = _shares(weights, "weights")
        was = selectors.direct_paid(generation_ref=ref)
        tx = fee_direct_correct(actor=actor, generation_ref=ref, weights=weights, reason=note)
        posted = [tx.key]
        correction = {
            "subject": dispute.subject,
            "weights": {str(k): v for k, v in sorted(weights.items())},
            "was_paid_minor": _was_now(was),
            "now_paid_minor": _was_now(selectors.direct_paid(generation_ref=ref)),
            "posted": posted,
        }
    elif dispute.subject == Subject.SIMILARITY_FLAG:
        SimilarityAudit.objects.filter(generation_ref=ref).update(payouts_held=False)
        posted = []
        correction = {"subject": dispute.subject, "flag": "overturned: its hold is lifted"}
    else:
        recording = dispute.recording
        was = selectors.master_holder_ids(recording_id=recording.pk)
        corrected = _master_shares(master_shares)
        rights_shares_set(actor=actor, recording=recording, shares=corrected)
        posted = []
        for generation in _ownership_generations(recording.pk):
            txs = recording_master_correct(
                actor=actor,
                generation_ref=generation,
                recording_id=recording.pk,
                master_shares={h.pk: bp for h, bp in corrected.items()},
                reason=note,
            )
            posted += [tx.key for tx in txs]
        correction = {
            "subject": dispute.subject,
            "recording": recording.pk,
            "was_master_shares": {str(h): bp for h, bp in sorted(was.items())},
            "now_master_shares": {
                str(h.pk): bp for h, bp in sorted(corrected.items(), key=lambda item: item[0].pk)
            },  # fmt: skip
            "posted": posted,
        }
    newly = _credited(posted) - set(dispute.parties.values_list("pk", flat=True))
    if newly:
        dispute.parties.add(*sorted(newly))
    return correction


def _log_correction(dispute: Dispute, *, actor, note: str, correction: dict) -> AttributionRecord:
    """The correction in the attribution log, naming the record it corrects (the generation's
    record; for ownership, none) and the previous correction of the same item, if any."""
    corrects = None
    if dispute.generation_ref:
        original = (
            AttributionRecord.objects.filter(
                generation_ref=dispute.generation_ref, kind=AttributionRecord.Kind.GENERATION
            )
            .order_by("sequence")
            .first()
        )
        corrects = {"sequence": original.sequence, "record_hash": original.record_hash}
    previous = (
        AttributionRecord.objects.filter(
            kind=AttributionRecord.Kind.CORRECTION,
            payload__item=dispute.item,
        )
        .order_by("-sequence")
        .first()
    )
    return attribution_record_append(
        kind=AttributionRecord.Kind.CORRECTION,
        generation_ref=dispute.generation_ref,
        payload={
            "event": "correction",
            "item": dispute.item,
            "generation": dispute.generation_ref,
            "requested_by": dispute.generation_requested_by,
            "dispute": dispute.pk,
            "corrects": corrects,
            "supersedes": (
                {"sequence": previous.sequence, "record_hash": previous.record_hash}
                if previous
                else None
            ),
            "correction": correction,
            "resolved_by": actor.pk,
            "note": note,
            "resolved_at": dispute.resolved_at.isoformat(),
        },
    )


# -- the deadline --------------------------------------------------------------------------------


def disputes_expire(*, now: datetime | None = None) -> list[Dispute]:
    """Close every open dispute past its deadline as expired and release what only it held
    (one transaction per dispute, so one failure leaves the others done)."""
    now = now or timezone.now()
    expired = []
    for dispute_id in list(selectors.due_disputes(now=now).values_list("pk", flat=True)):
        with transaction.atomic():
            dispute = (
                Dispute.objects.select_for_update()
                .filter(pk=dispute_id, status=Status.OPEN, deadline__lte=now)
                .first()
            )
            if dispute is None:  # resolved meanwhile
                continue
            Dispute.objects.filter(pk=dispute.pk).update(
                status=Status.EXPIRED,
                resolved_at=now,
                resolution_note="nobody resolved it by its deadline; the hold was released",
            )
            dispute.refresh_from_db()
            reason = f"dispute {dispute.pk} expired on {dispute.deadline:%Y-%m-%d}"
            holds = _reconcile(dispute, reason=reason, actor=None)
            dispute_event_append(
                dispute=dispute,
                kind=DisputeEvent.Kind.EXPIRED,
                actor=None,
                payload={
                    "deadline": dispute.deadline.isoformat(),
                    "holds_in_force": holds,
                    "held_minor": selectors.dispute_held_minor(dispute),
                },
            )
            expired.append(dispute)
    return expired
