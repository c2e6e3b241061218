"""Reads of the attribution app: records by generation or sequence, and the chain check;
similarity audits; and the TDA hub watch (how often each training recording is paid).

The check walks the log in sequence order in keyset batches (constant memory, so 100k+
records are fine) and recomputes, for each record: the payload hash, the link to the
preceding record's hash, and the record hash. The first record that fails is reported.
Deleting records at the end of the log cannot be seen from the chain alone; compare the
head hash with one kept elsewhere (the command prints it, `--anchor` checks it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, QuerySet

from attribution.models import (
    ClipCalibration,
    ModelUnlearning,
    SimilarityAudit,
    SimilarityMatch,
    TrainingAttribution,
)
from catalog.selectors import recordings_labels
from config.exceptions import InvalidInput, NotFound


def training_attribution_readable_by(
    *, user: AbstractBaseUser, generation_ref: str
) -> TrainingAttribution:
    """A generation's TDA job, for staff or for who asked for the generation (404 otherwise,
    so other users' generation ids are not confirmed)."""
    job = TrainingAttribution.objects.filter(generation_ref=generation_ref).first()
    if job is None or not (user.is_staff or job.generation_requested_by == user.pk):
        raise NotFound(f"no training attribution for generation {generation_ref}")
    return job


def training_attributions_visible_to(*, user: AbstractBaseUser) -> QuerySet[TrainingAttribution]:
    jobs = TrainingAttribution.objects.all()
    return jobs if user.is_staff else jobs.filter(generation_requested_by=user.pk)


# -- similarity audit (seed 003) -----------------------------------------------------------------


@dataclass(frozen=True)
class AuditMatch:
    """One of the recordings most similar to an output, with its best clip pair."""

    rank: int
    recording_id: int
    title: str
    artist: str
    similarity: float
    output_start_seconds: float  # where the best clip starts in the generated output
    recording_start_seconds: float  # and in the recording
    is_reference: bool
    in_training_set: bool
    flagged: bool


@dataclass(frozen=True)
class SimilarityAuditResult:
    """A generation's similarity audit as the receipt, the API and the staff report show it."""

    generation_ref: str
    status: str
    stage: str
    failure_reason: str
    flagged: bool
    payouts_held: bool
    threshold_name: str
    threshold_value: float | None
    thresholds: dict[str, float]  # every calibrated threshold of the encoder version
    encoder: str
    clip_seconds: float | None
    hop_seconds: float | None
    output_clip_count: int
    matches: list[AuditMatch]
    reference_scores: dict[str, dict]
    melody: dict  # the second score (AUDIT_MELODY_ENCODER); {} when off
    coverage: dict
    created_at: object
    finished_at: object

    @property
    def flagged_matches(self) -> list[AuditMatch]:
        return [m for m in self.matches if m.flagged]


def _audit_result(audit: SimilarityAudit) -> SimilarityAuditResult:
    matches = (
        SimilarityMatch.objects.filter(audit=audit)
        .select_related("recording__artist")
        .order_by("rank")
    )
    return SimilarityAuditResult(
        generation_ref=audit.generation_ref,
        status=audit.status,
        stage=audit.stage,
        failure_reason=audit.failure_reason,
        flagged=audit.flagged,
        payouts_held=audit.payouts_held,
        threshold_name=audit.threshold_name,
        threshold_value=audit.threshold_value,
        thresholds=dict(audit.calibration.thresholds) if audit.calibration_id else {},
        encoder=str(audit.encoder) if audit.encoder_id else "",
        clip_seconds=audit.clip_seconds,
        hop_seconds=audit.hop_seconds,
        output_clip_count=audit.output_clip_count,
        matches=[
            AuditMatch(
                rank=m.rank,
                recording_id=m.recording_id,
                title=m.recording.title,
                artist=m.recording.artist.name if m.recording.artist_id else "",
                similarity=m.similarity,
                output_start_seconds=m.output_start_seconds,
                recording_start_seconds=m.recording_start_seconds,
                is_reference=m.is_reference,
                in_training_set=m.in_training_set,
                flagged=m.flagged,
            )
            for m in matches
        ],
        reference_scores=dict(audit.reference_scores),
        melody=dict(audit.melody),
        coverage=dict(audit.coverage),
        created_at=audit.created_at,
        finished_at=audit.finished_at,
    )


def similarity_audit_for_generation(*, generation_ref: str) -> SimilarityAuditResult | None:
    """The generation's audit (None if it has none). Callers check who may see it."""
    audit = (
        SimilarityAudit.objects.select_related("encoder", "calibration")
        .filter(generation_ref=str(generation_ref))
        .first()
    )
    return _audit_result(audit) if audit else None


def similarity_audits(
    *, flagged_only: bool = False, limit: int = 200
) -> list[SimilarityAuditResult]:
    """Recent audits for the staff report, flagged ones first."""
    audits = SimilarityAudit.objects.select_related("encoder", "calibration").order_by(
        "-flagged", "-created_at"
    )
    if flagged_only:
        audits = audits.filter(flagged=True)
    return [_audit_result(audit) for audit in audits[:limit]]


def similarity_audit_counts() -> dict[str, int]:
    counts = {status: 0 for status in SimilarityAudit.Status.values}
    for row in SimilarityAudit.objects.values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    counts["flagged"] = SimilarityAudit.objects.filter(flagged=True).count()
    counts["held"] = SimilarityAudit.objects.filter(payouts_held=True).count()
    return counts


@dataclass(frozen=True)
class CalibrationRow:
    encoder: str
    clip_seconds: float
    hop_seconds: float
    clip_count: int
    recording_count: int
    fit: str
    thresholds: list[tuple[str, float, float | None]]  # name, in use, the paper's raw fit
    created_at: object


def clip_calibrations(*, limit: int = 20) -> list[CalibrationRow]:
    """Stored calibrations, newest first (one encoder version may have several)."""
    rows = ClipCalibration.objects.select_related("encoder").order_by("-created_at")[:limit]
    return [
        CalibrationRow(
            encoder=str(c.encoder),
            clip_seconds=c.clip_seconds,
            hop_seconds=c.hop_seconds,
            clip_count=c.clip_count,
            recording_count=c.recording_count,
            fit=c.config.get("fit", ""),
            thresholds=[
                (name, value, c.config.get("raw_thresholds", {}).get(name))
                for name, value in c.thresholds.items()
            ],
            created_at=c.created_at,
        )
        for c in rows
    ]


# -- TDA hub watch -------------------------------------------------------------------------------


def _paid_shares(shares: dict | None, payout_share_kind: str) -> dict[str, float] | None:
    """The split a done job actually paid: `shares["payout"]` (empty when the pool stayed
    unattributed), else, for rows written before it existed, `shares[payout_share_kind]`;
    None when neither is there (the row is skipped)."""
    shares = shares or {}
    if "payout" in shares:
        split = shares["payout"]
    elif payout_share_kind and payout_share_kind in shares:
        split = shares[payout_share_kind]
    else:
        return None
    return {str(rid): float(share) for rid, share in (split or {}).items() if float(share) > 0}


def tda_done_model_versions() -> list[dict[str, int]]:
    """Model versions that have done TDA jobs, with how many (most first, then newest), for
    choosing what the hub watch looks at."""
    rows = (
        TrainingAttribution.objects.filter(status=TrainingAttribution.Status.DONE)
        .values("model_version_id")
        .annotate(done=Count("pk"))
        .order_by("-done", "-model_version_id")
    )
    return [{"id": row["model_version_id"], "done": row["done"]} for row in rows]


def tda_hub_watch(
    *,
    model_version_id: int | None = None,
    flag_ratio: float = 3.0,
    min_z: float = 3.0,
    min_generations: int = 10,
) -> dict:
    """How often each training recording is paid by TDA, against the rate it would have if the
    paid top-k were spread evenly, so staff can spot hubs: recordings whose loss rises under
    almost any unlearning update and that are therefore paid far more often than expected.

    Looks at the done jobs of one model version (None: the one with the most done jobs, since
    scores of different versions are over different training sets). Over its G generations,
    with N training recordings (the union of the jobs' scored ids) and k_bar the mean number
    of paid recordings, each recording's expected rate is p = k_bar / N; `ratio` is its paid
    rate over p and `z` the binomial z-score (count - G p) / sqrt(G p (1 - p)). A recording is
    flagged when ratio >= flag_ratio and z >= min_z, and only once there are min_generations
    generations (the binomial z of a handful says little). Generations whose pool stayed
    unattributed (empty payout) count in G and pay nobody. `ratio`/`z` are None where p makes them
    undefined (p = 0, or p = 1 for z). Rows: flagged first, then most often paid.

    Raises NotFound when there are no done jobs (for that model version), InvalidInput on
    non-finite thresholds. Returns a JSON-ready dict (see the keys below).
    """
    if not (math.isfinite(flag_ratio) and math.isfinite(min_z)):
        raise InvalidInput("flag_ratio and min_z must be finite numbers")
    versions = tda_done_model_versions()
    if not versions:
        raise NotFound("no training attribution job is done yet")
    if model_version_id is None:
        model_version_id = versions[0]["id"]
    elif model_version_id not in {v["id"] for v in versions}:
        known = ", ".join(str(v["id"]) for v in versions)
        raise NotFound(
            f"model version {model_version_id} has no done training attribution jobs "
            f"(model versions with done jobs: {known})"
        )

    jobs = TrainingAttribution.objects.filter(
        status=TrainingAttribution.Status.DONE, model_version_id=model_version_id
    ).values_list("scores", "shares", "payout_share_kind")
    training: set[str] = set()
    counts: dict[str, int] = {}
    share_sums: dict[str, float] = {}
    generations = unattributed = skipped = paid_total = 0
    for scores, shares, kind in jobs.iterator():
        paid = _paid_shares(shares, kind)
        if paid is None:
            skipped += 1
            continue
        generations += 1
        training.update(str(rid) for rid in (scores or {}))
        training.update(paid)
        if not paid:
            unattributed += 1
        paid_total += len(paid)
        for rid, share in paid.items():
            counts[rid] = counts.get(rid, 0) + 1
            share_sums[rid] = share_sums.get(rid, 0.0) + share

    n = len(training)
    k_bar = paid_total / generations if generations else 0.0
    p = k_bar / n if n else 0.0
    labels = recordings_labels(recording_ids=[int(rid) for rid in training])
    rows = []
    for rid in training:
        count = counts.get(rid, 0)
        rate = count / generations if generations else 0.0
        # rate / p, as count N / (paid in all): no rounding when it is a whole ratio like 3
        ratio = count * n / paid_total if paid_total else None
        variance = generations * p * (1 - p)
        z = (count - generations * p) / math.sqrt(variance) if variance > 0 else None
        title, artist = labels.get(int(rid), ("(removed)", ""))
        rows.append(
            {
                "recording_id": int(rid),
                "title": title,
                "artist": artist,
                "count": count,
                "rate": rate,
                "mean_share": share_sums.get(rid, 0.0) / generations if generations else 0.0,
                "expected_rate": p,
                "ratio": ratio,
                "z": z,
                "flagged": ratio is not None
                and z is not None
                and generations >= min_generations
                and ratio >= flag_ratio
                and z >= min_z,
            }
        )
    rows.sort(key=lambda r: (not r["flagged"], -r["count"], -r["mean_share"], r["recording_id"]))
    return {
        "model_version_id": model_version_id,
        "model_versions": versions,
        "flag_ratio": flag_ratio,
        "min_z": min_z,
        "min_generations": min_generations,
        "generations": generations,  # G: done jobs with a readable payout split
        "unattributed": unattributed,  # of them, pools that paid nobody
        "skipped": skipped,  # done jobs with neither shares["payout"] nor the payout kind
        "training_recordings": n,  # N
        "mean_paid": k_bar,  # k_bar
        "expected_rate": p,  # k_bar / N
        "flagged": sum(r["flagged"] for r in rows),
        "rows": rows,
    }


def model_unlearning_jobs(limit: int = 50) -> list[ModelUnlearning]:
    """The latest removal jobs with their source and result versions, newest first."""
    return list(
        ModelUnlearning.objects.select_related("source_model_version", "result_model_version")[
            :limit
        ]
    )
