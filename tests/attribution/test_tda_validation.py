"""Whole-recording coverage, standard errors, the regime check and the retraining ground truth
of training-time attribution, on tiny synthetic recordings (plain module, no database)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attribution.tda import (
    AttributionRun,
    TDAConfig,
    TDAError,
    by_recording,
    standard_errors,
)
from attribution.tda.normalise import eligible_topk_shares
from attribution.tda.platform_model import PlatformTarget, platform_manifest
from attribution.tda.validation import (
    Retrainer,
    ValidationConfig,
    lds,
    query_losses,
    subset_plan,
    validate,
)
from attribution.tda.validation_methods import similarity_scorer, unlearning_scorer
from generation.model import GeneratorConfig, GeneratorTrainingItem, TrainConfig, train_generator
from tests.attribution.test_tda import synthetic_items

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FLOOR = math.log(1e-5)


def tone(frames: int, band: int, n_mels: int = 40, rate: float = 1.0) -> np.ndarray:
    mel = np.full((n_mels, frames), FLOOR, dtype=np.float32)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rate * np.arange(frames) / 62.5)
    mel[band] = -1.0 - 2 * envelope
    mel[band + 1] = -3.0 - 2 * envelope
    return mel


def hidden_tone_items() -> list[GeneratorTrainingItem]:
    """Five 4-s recordings (two 2-s windows each) sharing a common opening; only recording
    104's *second* window holds its own tone (in bands no other recording uses)."""
    config = GeneratorConfig.tiny()
    fps = config.mel.frames_per_second
    half = int(2.0 * fps)
    rng = np.random.default_rng(1)
    items = []
    for i in range(5):
        opening = tone(half, 4)  # the same for everyone
        ending = tone(half, 30) if i == 4 else tone(half, 8 + 4 * i, rate=1 + i)
        mel = np.concatenate([opening, ending], axis=1)
        mel += 0.05 * rng.standard_normal(mel.shape).astype(np.float32)
        vectors = rng.standard_normal((2, 512))  # each window its own (random) embedding
        windows = [(2.0 * w, (v / np.linalg.norm(v)).astype(np.float32))
                   for w, v in enumerate(vectors)]  # fmt: skip
        items.append(GeneratorTrainingItem(100 + i, mel, windows, window_seconds=2.0))
    return items


def tiny_tda(**overrides) -> TDAConfig:
    values = dict(
        method="exact", learning_rate=1e-7, loss_timesteps=16, unlearn_timesteps=32,
        fisher_timesteps=8, items_per_batch=2, loss_mask=True, loss_draw_banks=2,
        regime_probe_items=4, device="cpu",
    )  # fmt: skip
    return TDAConfig(**(values | overrides))


@pytest.fixture(scope="module")
def hidden():
    items = hidden_tone_items()
    # Single-window references, as `window_example` (the attribution example) conditions: the
    # test is about which windows attribution covers, not about track-vector conditioning.
    train = TrainConfig.tiny(steps=600, track_reference_prob=0.0)
    report = train_generator(items, GeneratorConfig.tiny(), train)
    target = PlatformTarget(report.generator.config)
    return items, target, target.prepare(report.generator.model.cpu())


def attribute(hidden, coverage: str, tmp_path, config: TDAConfig | None = None):
    items, target, model = hidden
    config = config or tiny_tda()
    manifest = platform_manifest(items, target.config, coverage=coverage)
    query = target.example(manifest.items[-1] if coverage == "whole" else manifest.items[-1])
    if coverage == "first":  # the query is still recording 104's distinctive second window
        query = target.example(platform_manifest(items, target.config).items[-1])
    run = AttributionRun(
        tmp_path / coverage, target=target, model=model, manifest=manifest, query=query,
        config=config, model_version="tiny", query_key="hidden",
    )  # fmt: skip
    return manifest, run.run()


def test_windows_cover_whole_recordings_with_the_last_one_padded(hidden):
    items, target, _ = hidden
    manifest = platform_manifest(items, target.config)
    assert len(manifest) == 10 and manifest.recordings() == [100, 101, 102, 103, 104]
    (start0, real0), (start1, real1) = manifest.segments[:2]
    assert start0 == 0.0 and start1 == real0 == pytest.approx(2.0, abs=0.01)  # back to back
    assert start1 + real1 == pytest.approx(items[0].logmel.shape[1] / 125, abs=1e-3)
    padded = list(items[:1]) + [
        GeneratorTrainingItem(200, items[1].logmel[:, :400], items[1].windows, 2.0)
    ]
    layout = platform_manifest(padded, target.config)
    last = target.example(layout.items[-1])
    assert layout.segments[-1] == pytest.approx((251 / 125, (400 - 251) / 125), abs=1e-3)
    assert 0 < int(last.mask.sum()) < last.mask.shape[1]  # padded, and masked
    assert platform_manifest(items, target.config, coverage="first").digest != manifest.digest


def test_a_recording_whose_distinctive_audio_is_after_its_first_window_is_credited(
    hidden, tmp_path
):
    manifest, whole = attribute(hidden, "whole", tmp_path)
    recordings = whole.recordings()
    assert recordings.ids[int(np.argmax(recordings.max))] == 104  # its second window found it
    assert recordings.max_window[recordings.ids.index(104)] == 9
    _, first = attribute(hidden, "first", tmp_path)
    ranked = [first.ids[i] for i in np.argsort(-first.scores)]
    assert ranked[0] != 104  # first windows only: the opening everyone shares hides it


def test_standard_errors_describe_the_spread_of_independent_draws(hidden, tmp_path):
    """Two banks of loss draws are independent estimates: their difference should lie within a
    few combined standard errors (and SEs must shrink with more draws)."""
    items, target, model = hidden
    manifest = platform_manifest(items, target.config)
    query = target.example(manifest.items[-1])
    results = []
    for key in ("a", "b", "c", "d"):  # keys picking both banks
        run = AttributionRun(
            tmp_path / key, target=target, model=model, manifest=manifest, query=query,
            config=tiny_tda(loss_draw_banks=64), model_version="tiny", query_key=key,
        )  # fmt: skip
        results.append(run.run())
    banks = {r.provenance["loss_bank"] for r in results}
    assert len(banks) > 1
    first, other = next((a, b) for a in results for b in results
                        if a.provenance["loss_bank"] != b.provenance["loss_bank"])  # fmt: skip
    z = (first.scores - other.scores) / np.hypot(first.standard_errors, other.standard_errors)
    assert np.all(first.standard_errors > 0)
    assert np.mean(np.abs(z) < 3) >= 0.8, z
    more = AttributionRun(
        tmp_path / "more", target=target, model=model, manifest=manifest, query=query,
        config=tiny_tda(loss_timesteps=64), model_version="tiny", query_key="a",
    ).run()  # fmt: skip
    assert np.median(more.standard_errors) < np.median(first.standard_errors)


def test_standard_error_maths_and_the_noise_bar():
    draws = np.array([[1.0, 3.0], [2.0, 2.0]])
    assert np.allclose(standard_errors([draws]), [1.0, 0.0])
    banks, groups = np.array([[1.0, 3.0]]), np.array([[2.0, 2.0, 2.0, 2.0]])
    assert np.allclose(standard_errors([banks, groups]), [1.0])
    with pytest.raises(TDAError, match="at least 2"):
        standard_errors([np.ones((3, 1))])
    recordings = by_recording([7, 7, 8], np.array([1.0, 3.0, 2.0]),
                              [np.array([[0.0, 2.0], [2.0, 4.0], [1.0, 3.0]])])  # fmt: skip
    assert recordings.ids == [7, 8] and recordings.windows == [2, 1]
    assert np.allclose(recordings.mean, [2.0, 2.0]) and np.allclose(recordings.max, [3.0, 2.0])
    assert np.allclose(recordings.mean_se, [1.0, 1.0])  # rows (1, 3): var 2 / 2
    shares = eligible_topk_shares([3.0, 1.0, 2.0], [1.0, 1.0, 0.1], k=10, min_z=2.0)
    assert np.allclose(shares, [0.6, 0.0, 0.4])  # 1.0 is within 2 SE of zero: not paid
    with pytest.raises(TDAError, match="clears"):
        eligible_topk_shares([0.5, -1.0], [1.0, 1.0], k=10, min_z=2.0)


def test_regime_check_exact_equals_first_order_at_the_platform_learning_rate(hidden, tmp_path):
    _, small = attribute(hidden, "whole", tmp_path)
    assert small.regime["pearson"] > 0.99 and 0 < small.regime["own_loss_rise"] < 0.01
    _, large = attribute(hidden, "whole", tmp_path / "large", tiny_tda(learning_rate=3e-3))
    assert large.regime["own_loss_rise"] > 0.1  # far outside the first-order regime
    assert large.regime["pearson"] < small.regime["pearson"]


def test_first_order_run_matches_exact_ranks_and_has_standard_errors(hidden, tmp_path):
    items, target, model = hidden
    _, exact = attribute(hidden, "whole", tmp_path)
    config = tiny_tda(method="first_order", loss_draw_banks=4, loss_timesteps=4,
                      query_groups=4, projection="countsketch", projection_dim=8192)  # fmt: skip
    _, first = attribute(hidden, "whole", tmp_path / "fo", config)
    assert first.standard_errors.shape == first.scores.shape
    assert np.all(first.standard_errors > 0) and np.isnan(first.base).all()
    assert first.recordings().ids[int(np.argmax(first.recordings().max))] == 104
    assert np.corrcoef(first.scores, exact.scores)[0, 1] > 0.8


def test_lds_is_one_for_a_perfect_predictor_and_minus_one_for_its_opposite():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((3, 10))
    subsets = subset_plan(10, ValidationConfig(subsets=12))
    member = np.zeros((12, 10))
    for s, keep in enumerate(subsets):
        member[s, keep] = 1
    actual = scores @ member.T
    assert np.allclose(lds(scores, subsets, actual), 1.0)
    assert np.allclose(lds(-scores, subsets, actual), -1.0)
    assert all(len(s) == 5 for s in subsets) and len({tuple(s) for s in subsets}) == 12


def test_leaving_out_the_top_scored_item_raises_the_query_loss_more_than_the_bottom(tmp_path):
    """Leave-one-out retraining, tiny: the query is training item 2's own example."""
    items = synthetic_items()
    config, train = GeneratorConfig.tiny(), TrainConfig.tiny(steps=400)
    retrainer = Retrainer(tmp_path, items, config, train)
    full = retrainer.model(range(len(items)))
    target = PlatformTarget(retrainer.config)
    model = target.prepare(full)
    manifest = platform_manifest(items, retrainer.config, coverage="first")
    query = target.example(manifest.items[2])
    scores = AttributionRun(
        tmp_path / "run", target=target, model=model, manifest=manifest, query=query,
        config=tiny_tda(regime_probe_items=0), model_version="tiny", query_key="q2",
    ).run().scores  # fmt: skip
    top, bottom = int(np.argmax(scores)), int(np.argmin(scores))
    settings = ValidationConfig(query_draws=32)
    base = query_losses(target, full, [query], ["q2"], settings)[0]

    def rise(left_out: int) -> float:
        kept = [i for i in range(len(items)) if i != left_out]
        return query_losses(target, retrainer.model(kept), [query], ["q2"], settings)[0] - base

    assert top == 2
    assert rise(top) > rise(bottom) and rise(top) > 0


def test_validation_reports_every_method_and_resumes_from_cached_models(tmp_path):
    items = synthetic_items()
    settings = ValidationConfig(subsets=4, second_seed_subsets=3, queries=2, leave_out=2,
                                random_leave_outs=2, query_draws=16)  # fmt: skip
    scorers = [unlearning_scorer({"unlearn_timesteps": 16}), similarity_scorer()]
    kwargs = dict(directory=tmp_path, paid_method="first_order_mean")
    train = TrainConfig.tiny(steps=150)
    report = validate(items, GeneratorConfig.tiny(), train, settings, scorers, **kwargs)
    trak = {f"trak_{d}_{a}" for d in ("0.01", "0.1", "1") for a in ("mean", "max")}
    assert set(report["methods"]) == trak | {
        "first_order_mean", "first_order_max", "first_order_normalised", "exact_product_lr",
        "exact_nonlinear_lr", "conditioning_similarity", "dit_activation_similarity", "random",
    }  # fmt: skip
    assert all(len(m["per_query"]) == 2 for m in report["methods"].values())
    assert report["noise_ceiling"] is not None and report["leave_out"]["queries"] == 2
    rises = report["extra"]["regime"]
    assert min(rises["exact_nonlinear_lr"]["own_loss_rise"]) > max(
        rises["exact_product_lr"]["own_loss_rise"]
    )
    assert report["retrained"] > 0
    again = validate(items, GeneratorConfig.tiny(), train, settings, scorers, **kwargs)
    assert again["retrained"] == 0  # every model came from the cache
    assert again["methods"]["first_order_mean"] == report["methods"]["first_order_mean"]
    with pytest.raises(TDAError, match="at least 4"):
        validate(items[:3], GeneratorConfig.tiny(), train, settings, scorers, **kwargs)


def test_retrained_models_share_the_full_sets_normalisation(tmp_path):
    items = synthetic_items()
    retrainer = Retrainer(tmp_path, items, GeneratorConfig.tiny(), TrainConfig.tiny(steps=5))
    assert retrainer.config.mel_mean is not None
    report = train_generator(items[:2], retrainer.config, TrainConfig.tiny(steps=2),
                             keep_stats=True)  # fmt: skip
    assert report.generator.config.mel_mean == retrainer.config.mel_mean
    assert torch.is_tensor(next(retrainer.model([0, 1]).parameters()))
