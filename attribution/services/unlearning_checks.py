"""The verification of a removal that looks beyond losses (attribution/services/unlearning.py
runs it before a new model version may be served): self-influence against held-out
recordings, and what the new model generates: its conditioning gap beside the old model's on
the same references and seeds, and near copies of the removed recordings."""

from __future__ import annotations

import math
from typing import Any

from attribution.tda import TDAConfig
from attribution.tda.platform_model import PlatformTarget
from attribution.tda.removal import Membership, RemovalConfig, no_longer_first, self_scores
from catalog.retrieval.runtime import loaded_encoder
from config.exceptions import DomainError
from generation.evaluation import conditioning_of, generate_trials
from generation.model import Generator
from generation.models import ModelVersion
from generation.providers import near_copies
from generation.selectors import permitted_track_vectors
from generation.services.quality import outputs_clap_frechet


def self_influence_check(
    target: PlatformTarget,
    old: Any,
    new: Any,
    revoked_windows: dict[int, list],
    heldout_windows: dict[int, list],
    fisher: Any,
    removal: RemovalConfig,
    options: dict,
    n_items: int,
    progress: Any = None,
    moved: bool = True,
) -> dict[str, Any]:
    """Attribution's view: each recording's self-influence (the median over its membership
    windows of its own loss rise when the window is unlearned as a query), on the old and the
    new model with the same draws. It passes when no revoked recording ranks first among the
    held-out recordings on the new model and its score did not rise or it sits inside the
    membership band among them (`no_longer_first`).
    When no weight `moved`, the old model's scores are the new model's (not computed twice)."""
    config = TDAConfig(
        learning_rate=options["influence_learning_rate"], layer_group=removal.layer_group,
        unlearn_timesteps=16, loss_mask=True, device="cpu", seed=removal.seed,
    )  # fmt: skip
    count = options["influence_windows"]
    windows = {rid: ws[:count] for rid, ws in {**revoked_windows, **heldout_windows}.items()}
    result: dict[str, Any] = {"windows_per_recording": max(len(ws) for ws in windows.values())}

    def scores_of(model: Any) -> dict[int, float]:
        return self_scores(target, model, windows, fisher, config, n_items=n_items,
                           removal=removal, progress=progress)  # fmt: skip

    measured = {"before": scores_of(old)}
    measured["after"] = scores_of(new) if moved else measured["before"]
    tests = {}
    for name, scores in measured.items():
        tests[name] = Membership(
            {rid: scores[rid] for rid in revoked_windows},
            {rid: scores[rid] for rid in heldout_windows},
        )
        result[f"percentile_{name}"] = {str(k): v for k, v in tests[name].percentiles().items()}
        result[f"scores_{name}"] = {str(k): round(v, 6) for k, v in scores.items()}
    verdict = no_longer_first(tests["before"], tests["after"], removal.band[1])
    result["recordings"] = verdict["recordings"]
    result["band_high"] = verdict["band_high"]
    result["passed"] = verdict["passed"]
    return result


def quality_check(
    source: ModelVersion,
    old: Generator,
    new: Generator,
    revoked: list[int],
    options: dict,
    heldout_ids: list[int],
    moved: bool = True,
) -> dict[str, Any]:
    """On the same references and seeds for both models: the conditioning gap, the Frechet
    distance in the CLAP space from the outputs to held-out audio (the issue's fallback when
    the full generator evaluation is too slow for a job), and whether any new output is a
    near copy of a revoked recording (the audit's flag). When no weight `moved`, the old
    model's outputs are the new model's (not generated and measured twice)."""
    vectors = {
        rid: v for rid, v in permitted_track_vectors(encoder_version=source.encoder).items()
        if rid not in revoked
    }  # fmt: skip
    encoder = loaded_encoder(source.encoder)
    gaps, outputs, trials_new = {}, {}, []
    measured = {"before": old, "after": new} if moved else {"before": old}
    for name, generator in measured.items():
        trials = generate_trials(
            generator=generator, track_vectors=vectors, generations=options["quality_generations"],
            references_per_generation=2, others_per_generation=options["quality_others"],
            seconds=options["quality_seconds"], seed=11,
        )  # fmt: skip
        gaps[name] = conditioning_of(
            trials, sample_rate=generator.sample_rate, encoder=encoder, track_vectors=vectors
        ).to_dict()["gap"]
        trials_new, outputs[name] = trials, [t.audio for t in trials]
    gaps.setdefault("after", gaps["before"])
    frechet = outputs_clap_frechet(
        model_version=source, outputs=outputs, sample_rate=new.sample_rate,
        heldout_ids=heldout_ids,
    )  # fmt: skip
    before, after = frechet["before"], frechet.get("after", frechet["before"])
    fd_tolerance = max(
        options["fd_tolerance"] * before["fd"], 2 * math.hypot(before["se"], after["se"])
    )
    copies, audit = [], "run"
    try:
        for n, trial in enumerate(trials_new):
            matches = near_copies(
                audio=trial.audio, sample_rate=new.sample_rate,
                reference_ids=trial.reference_ids, training_ids=revoked,
            )  # fmt: skip
            copies += [(n, m.recording_id) for m in matches if m.recording_id in revoked]
    except DomainError as exc:  # no audit clips or calibration: say so, do not guess
        audit = f"not run: {exc.message}"
    tolerance = options["gap_tolerance"]
    return {
        "conditioning_gap": gaps,
        "near_copies_of_revoked": copies,
        "checks": {
            "conditioning_gap": {
                "passed": gaps["after"] >= gaps["before"] - tolerance,
                "before": gaps["before"], "after": gaps["after"], "tolerance": tolerance,
            },
            "clap_frechet": {
                "passed": after["fd"] <= before["fd"] + fd_tolerance,
                "before": before, "after": after, "tolerance": round(fd_tolerance, 4),
            },
            # an audit that could not run proves nothing: not served until it can
            "no_near_copy": {"passed": audit == "run" and not copies, "copies": copies,
                             "audit": audit},
        },
    }  # fmt: skip
