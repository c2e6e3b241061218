"""Training-data attribution by unlearning (attribution/tda): tiny configs on CPU, no database.

A tiny DiT is trained once per module (generation.model.train_generator, a few seconds) on
synthetic recordings with distinct tone spectra, lengths (some padded) and random unit 512-d
"CLAP" vectors; the stages are checked against brute force and against each other.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from attribution.tda import (
    AttributionRun,
    AttributionTarget,
    BaseLossCache,
    Example,
    FastIndex,
    FisherInfo,
    IncompleteRunError,
    Manifest,
    NonFiniteLossError,
    NormalisationError,
    Projector,
    StageMismatchError,
    TDAConfig,
    TDAConfigError,
    build_target,
    chunk_ranges,
    compare,
    compute_fisher,
    concatenate,
    draws,
    fisher_file_name,
    frechet_distance,
    item_losses,
    minmax,
    score_chunk,
    self_influence,
    softmax_shares,
    spearman,
    target_rank,
    topk_shares,
    unlearn,
    unlearning_gradient,
)
from attribution.tda.platform_model import PlatformTarget, platform_manifest
from generation.model import (
    GenerationSpec,
    GeneratorConfig,
    GeneratorTrainingItem,
    ReferenceCondition,
    TrainConfig,
    diffusion_loss,
    train_generator,
)
from generation.quality import trace_sqrt_product

LENGTHS = (2.4, 1.2, 2.0, 0.8, 2.6, 1.5)  # seconds; the tiny DiT takes 2 s, so 3 are padded
MODEL_VERSION = "sha256-of-the-tiny-checkpoint"


def synthetic_items(seed: int = 0) -> list[GeneratorTrainingItem]:
    """One steady two-partial tone per recording in its own band of mel bins, modulated at its
    own rate, with 1-s windows embedded near the recording's own random unit vector."""
    rng = np.random.default_rng(seed)
    config = GeneratorConfig.tiny()
    fps = config.mel.frames_per_second
    items = []
    for i, seconds in enumerate(LENGTHS):
        frames = int(seconds * fps)
        mel = np.full((config.mel.n_mels, frames), math.log(1e-5), dtype=np.float32)
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (1 + i) * np.arange(frames) / fps)
        for partial, centre in enumerate((3 + 6 * i, 6 + 6 * i)):
            mel[centre] = -1.0 - partial - 2 * envelope
            mel[centre + 1] = -4.0 - partial - 2 * envelope
        mel += 0.05 * rng.standard_normal(mel.shape).astype(np.float32)
        own = rng.standard_normal(512)
        own /= np.linalg.norm(own)
        windows = []
        for start in np.arange(0.0, max(seconds - 0.5, 0.01), 1.0):
            vector = own + 0.05 * rng.standard_normal(512)
            windows.append((float(start), (vector / np.linalg.norm(vector)).astype(np.float32)))
        items.append(GeneratorTrainingItem(100 + i, mel, windows, window_seconds=1.0))
    return items


def tiny_config(**overrides) -> TDAConfig:
    values = dict(
        learning_rate=1e-7, loss_timesteps=32, unlearn_timesteps=64, fisher_timesteps=16,
        items_per_batch=2, grad_batch=16, loss_mask=True, device="cpu",
    )  # fmt: skip
    values.update(overrides)
    return TDAConfig(**values)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained():
    """(target, prepared theta0, manifest): a tiny DiT trained for 600 steps (~8 s)."""
    items = synthetic_items()
    report = train_generator(items, GeneratorConfig.tiny(), TrainConfig.tiny(steps=600))
    target = PlatformTarget(report.generator.config)
    model = target.prepare(report.generator.model.cpu())
    return target, model, platform_manifest(items, report.generator.config, coverage="first")


@pytest.fixture(scope="module")
def fisher(trained):
    target, model, manifest = trained
    return compute_fisher(target, model, manifest, tiny_config(), model_version=MODEL_VERSION)


# -- a second, toy target: the stages are model-agnostic ---------------------------------------


class ToyDenoiser(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(4, 4)])
        self.unused = nn.Parameter(torch.ones(3))  # in the group, but no loss reaches it
        self.cond_proj = nn.Linear(2, 4)

    def forward(self, x, t, cond):  # x (B, 4, T), t (B,), cond (B, 2)
        h = x.transpose(1, 2)  # (B, T, 4)
        h = self.blocks[0](h) + self.cond_proj(cond)[:, None] + t[:, None, None]
        return h.transpose(1, 2)


class ToyTarget:
    name = "toy"

    def prepare(self, model):
        return model.eval()

    def layer_groups(self, model):
        return {"blocks": ["blocks.0.weight", "blocks.0.bias", "unused"]}

    def example(self, item):
        x0, cond = item
        return Example(x0[None], cond[None], torch.ones(1, x0.shape[-1], dtype=torch.bool))

    def collate(self, examples):
        return Example(
            torch.cat([e.x0 for e in examples]),
            torch.cat([e.cond for e in examples]),
            torch.cat([e.mask for e in examples]),
        )

    def cond_to_tensors(self, cond):
        return (cond,)

    def cond_from_tensors(self, tensors):
        return tensors[0]

    def loss(self, model, batch, timesteps, noise, mask, per_draw=False):
        b, k = timesteps.shape
        x0 = batch.x0.repeat_interleave(k, dim=0)
        eps = noise.reshape(b * k, *noise.shape[2:])
        t = timesteps.reshape(-1)
        x_t = x0 * (1 - t)[:, None, None] + eps * t[:, None, None]
        cond = batch.cond.repeat_interleave(k, dim=0)
        error = ((model(x_t, t, cond) - eps) ** 2).mean(dim=1)  # (B * K, T)
        losses = error.mean(dim=1).reshape(b, k)
        return losses if per_draw else losses.mean(dim=1)

    def item_id(self, item):
        return None


def toy_setup(n: int = 4):
    torch.manual_seed(0)
    items = [(torch.randn(4, 3), torch.randn(2)) for _ in range(n)]
    manifest = Manifest(items=items, ids=tuple(range(n)), digest="toy-manifest")
    config = TDAConfig(
        learning_rate=1e-3, loss_timesteps=4, unlearn_timesteps=4, fisher_timesteps=4,
        items_per_batch=2, grad_batch=8, device="cpu",
    )  # fmt: skip
    return ToyTarget(), ToyDenoiser().eval(), manifest, config


# -- config ------------------------------------------------------------------------------------


def test_config_round_trips_and_rejects_unknown_keys():
    config = TDAConfig(learning_rate=1e-5, layer_group="cross_attn_kv")
    assert TDAConfig.from_dict(config.to_dict()) == config
    assert TDAConfig().learning_rate == 1e-6 and TDAConfig().steps == 1
    assert TDAConfig().unlearn_mask is True and TDAConfig().loss_mask is False
    with pytest.raises(TDAConfigError, match="unknown"):
        TDAConfig.from_dict({**config.to_dict(), "lr": 1.0})
    with pytest.raises(TDAConfigError):
        TDAConfig(layer_group="everything")
    with pytest.raises(TDAConfigError):
        TDAConfig(learning_rate=float("nan"))


def test_draws_are_reproducible_per_item_and_purpose():
    t1, n1 = draws(0, "loss", 5, 8, (3, 4))
    t2, n2 = draws(0, "loss", 5, 8, (3, 4))
    assert torch.equal(t1, t2) and torch.equal(n1, n2)
    assert not torch.equal(draws(0, "loss", 6, 8, (3, 4))[1], n1)
    assert not torch.equal(draws(0, "unlearn", 5, 8, (3, 4))[1], n1)
    assert ((t1 >= 0) & (t1 < 1)).all()
    assert torch.equal((t1 * 8).floor(), torch.arange(8.0))  # stratified: one per eighth


# -- Fisher ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["per_timestep", "per_item"])
def test_fisher_is_float64_positive_and_matches_a_per_sample_loop(trained, mode):
    target, model, manifest = trained
    config = tiny_config(fisher_timesteps=3, fisher_mode=mode, grad_batch=4)
    names = list(target.layer_groups(model)["cross_attn_kv"])
    info = compute_fisher(
        target, model, manifest, config, model_version=MODEL_VERSION, group="cross_attn_kv"
    )
    loop_model = copy.deepcopy(model).requires_grad_(True)
    params = dict(loop_model.named_parameters())
    brute = {n: torch.zeros(params[n].shape, dtype=torch.float64) for n in names}
    for index, item in enumerate(manifest.items):
        example = target.example(item)
        t, noise = draws(config.seed, "fisher", index, 3, example.x0.shape[1:])
        per_draw = []
        for k in range(3):
            loss = diffusion_loss(
                loop_model, example.x0, example.cond, t[k : k + 1], noise[k : k + 1],
                mask=example.mask, frame_mask=example.mask,
            )[0]  # fmt: skip
            grads = torch.autograd.grad(loss, [params[n] for n in names])
            per_draw.append([g.double() for g in grads])
        for j, name in enumerate(names):
            stacked = torch.stack([d[j] for d in per_draw])
            if mode == "per_timestep":
                brute[name] += (stacked**2).mean(dim=0)
            else:
                brute[name] += stacked.mean(dim=0) ** 2
    for name in names:
        value = info.diagonal[name]
        assert value.dtype == torch.float64
        assert torch.isfinite(value).all() and (value > 0).all()
        expected = brute[name] / len(manifest)
        torch.testing.assert_close(value, expected, rtol=2e-3, atol=1e-6 * float(expected.max()))
    assert info.zeros == 0
    assert set(info.diagonal) == set(names)


def test_fisher_zero_entries_are_counted_and_floored():
    target, model, manifest, config = toy_setup()
    info = compute_fisher(target, model, manifest, config, model_version="toy")
    assert info.zero_counts["unused"] == 3 and info.zeros == 3
    names = target.layer_groups(model)["blocks"]
    floored, report = info.floored(names, config)
    assert report.zeros == 3 and report.floored >= 3 and report.floor > 0
    assert (floored["unused"] == report.floor).all()
    assert all((v > 0).all() for v in floored.values())
    query = target.example(manifest.items[0])
    result = unlearn(target, model, query, info, config, n_items=len(manifest))
    assert all(torch.isfinite(v).all() for v in result.values.values())
    assert torch.equal(result.values["unused"], model.unused.detach())  # no gradient, no step


def test_saved_fisher_refuses_another_manifest_model_or_config(trained, fisher, tmp_path):
    target, model, manifest = trained
    path = fisher.save(tmp_path / "fisher.pt")
    config = tiny_config()
    loaded = FisherInfo.load(
        path, model_version=MODEL_VERSION, manifest_digest=manifest.digest, config=config
    )
    assert all(torch.equal(loaded.diagonal[n], fisher.diagonal[n]) for n in fisher.diagonal)
    with pytest.raises(StageMismatchError, match="manifest"):
        FisherInfo.load(path, model_version=MODEL_VERSION, manifest_digest="other", config=config)
    with pytest.raises(StageMismatchError, match="model version"):
        FisherInfo.load(path, model_version="other", manifest_digest=manifest.digest, config=config)
    with pytest.raises(StageMismatchError, match="settings"):
        FisherInfo.load(
            path, model_version=MODEL_VERSION, manifest_digest=manifest.digest,
            config=tiny_config(fisher_timesteps=8),
        )  # fmt: skip
    # the learning rate is not a Fisher setting: one Fisher serves the whole grid
    FisherInfo.load(
        path, model_version=MODEL_VERSION, manifest_digest=manifest.digest,
        config=tiny_config(learning_rate=1e-3),
    )  # fmt: skip


# -- unlearning and scores ---------------------------------------------------------------------


def test_unchanged_model_scores_exactly_zero(trained):
    target, model, manifest = trained
    chunk = score_chunk(target, model, copy.deepcopy(model), manifest, tiny_config(), 0, 6)
    assert chunk.scores.dtype == np.float64
    assert np.array_equal(chunk.scores, np.zeros(6))  # common random numbers, same batches
    assert np.all(chunk.base > 0)


@pytest.mark.parametrize("group", ["cross_attn_kv", "blocks"])
def test_only_the_chosen_layer_group_changes(trained, fisher, group):
    target, model, manifest = trained
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    query = target.example(manifest.items[2])
    config = tiny_config(layer_group=group, steps=2)
    result = unlearn(target, model, query, fisher, config, n_items=len(manifest))
    allowed = set(target.layer_groups(model)[group])
    changed = {
        n for n, p in result.model.named_parameters() if not torch.equal(p.detach(), before[n])
    }
    assert changed and changed <= allowed
    assert len(changed) >= len(allowed) // 2
    assert all(torch.equal(p.detach(), before[n]) for n, p in model.named_parameters())
    assert result.update_norm > 0 and result.floor.zeros == 0


@pytest.mark.parametrize("unlearn_mask", [True, False])
def test_m_u_keeps_padded_frames_out_of_the_unlearning_gradient(trained, unlearn_mask):
    target, model, manifest = trained
    config = tiny_config(unlearn_mask=unlearn_mask, layer_group="cross_attn_kv")
    names = target.layer_groups(model)["cross_attn_kv"]
    query = target.example(manifest.items[3])  # 0.8 s of 2 s: mostly padding
    altered = Example(query.x0.clone(), query.cond, query.mask)
    altered.x0[:, :, ~query.mask[0]] += 3.0  # change only the padded frames
    grads = [
        unlearning_gradient(target, model, q, config, names=names, query_key="q")
        for q in (query, altered)
    ]
    same = all(torch.equal(grads[0][n], grads[1][n]) for n in names)
    assert same is unlearn_mask


@pytest.mark.parametrize("loss_mask", [True, False])
def test_m_l_keeps_padded_frames_out_of_the_measured_loss(trained, loss_mask):
    target, model, manifest = trained
    item = target.example(manifest.items[3])  # 0.8 s of 2 s: mostly padding
    altered = Example(item.x0.clone(), item.cond, item.mask)
    altered.x0[:, :, ~item.mask[0]] += 3.0  # change only the padded frames
    t = torch.full((1,), 0.5)
    noise = torch.randn(item.x0.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        losses = [
            target.loss(model, e, t, noise, e.mask if loss_mask else None) for e in (item, altered)
        ]
    assert torch.equal(losses[0], losses[1]) is loss_mask


def test_self_influence_ranks_the_unlearned_item_first(trained, fisher, tmp_path):
    """Seed 000 section 3.2: unlearn a training item (M_U on), it must be the most influential.
    Items 0 and 4 are unpadded, item 3 is the shortest (60% padding). M_L is on as well because
    this generator is trained with padding masked out of its loss."""
    target, model, manifest = trained
    config = tiny_config(unlearn_mask=True, loss_mask=True)
    cache = BaseLossCache(
        tmp_path, target=target, model_version=MODEL_VERSION, manifest=manifest, config=config,
        device=torch.device("cpu"),
    )  # fmt: skip
    report = self_influence(target, model, manifest, fisher, config, [0, 3, 4], cache=cache)
    assert report.ranks == [1, 1, 1], [np.round(s * 1e6, 2) for s in report.scores]
    for index, scores in zip(report.indices, report.scores, strict=True):
        assert scores[index] > 0


def test_cached_base_losses_and_chunks_reproduce_the_whole_run(trained, fisher, tmp_path):
    target, model, manifest = trained
    config = tiny_config()
    unlearned = unlearn(
        target, model, target.example(manifest.items[1]), fisher, config, n_items=6
    ).model
    whole = score_chunk(target, model, unlearned, manifest, config, 0, 6)
    cache = BaseLossCache(
        tmp_path, target=target, model_version=MODEL_VERSION, manifest=manifest, config=config,
        device=torch.device("cpu"),
    )  # fmt: skip
    first = score_chunk(target, model, unlearned, manifest, config, 0, 6, cache=cache)
    again = score_chunk(target, model, unlearned, manifest, config, 0, 6, cache=cache)
    assert not first.cached_base and again.cached_base
    assert cache.misses == 3 and cache.hits == 3
    assert np.array_equal(first.scores, whole.scores)
    assert np.array_equal(again.scores, whole.scores)
    ranges = chunk_ranges(6, 3, config.items_per_batch)
    assert ranges == [(0, 4), (4, 6)]
    parts = [score_chunk(target, model, unlearned, manifest, config, a, b) for a, b in ranges]
    joined = concatenate(parts[::-1], 6)
    assert np.array_equal(joined.scores, whole.scores)
    assert joined.ids == list(manifest.ids)
    with pytest.raises(TDAConfigError, match="multiple"):
        score_chunk(target, model, unlearned, manifest, config, 1, 6)
    with pytest.raises(StageMismatchError):  # a cache directory of other settings
        key_dir = tmp_path / cache.key
        (key_dir / "cache.json").write_text(json.dumps({"tampered": True}))
        BaseLossCache(
            tmp_path, target=target, model_version=MODEL_VERSION, manifest=manifest,
            config=config, device=torch.device("cpu"),
        )  # fmt: skip


def test_nan_loss_raises_and_nothing_is_saved(tmp_path):
    target, model, manifest, config = toy_setup()
    with torch.no_grad():
        model.blocks[0].bias[0] = float("nan")
    with pytest.raises(NonFiniteLossError):
        item_losses(target, model, manifest, config, 0, 4)
    with pytest.raises(NonFiniteLossError):
        score_chunk(target, model, model, manifest, config, 0, 4)
    good = ToyDenoiser().eval()
    run = AttributionRun(
        tmp_path, target=target, model=good, manifest=manifest,
        query=target.example(manifest.items[0]), config=config, model_version="toy",
    )  # fmt: skip
    run.unlearned_model()
    with torch.no_grad():
        run._unlearned.blocks[0].bias[0] = float("nan")
    with pytest.raises(NonFiniteLossError):
        run.score(0, 4)
    assert not list((tmp_path / "scores").glob("*.npz"))
    with pytest.raises(IncompleteRunError):
        run.result()


# -- the staged run ----------------------------------------------------------------------------


def test_attribution_run_saves_resumes_and_refuses_other_settings(trained, tmp_path):
    target, model, manifest = trained
    config = tiny_config()
    query = target.example(manifest.items[4])
    seen = []
    kwargs = dict(
        target=target, model=model, manifest=manifest, query=query, config=config,
        model_version=MODEL_VERSION,
        fisher_path=tmp_path / "shared" / fisher_file_name(MODEL_VERSION, manifest.digest, config),
        cache_dir=tmp_path / "cache",
    )  # fmt: skip
    run = AttributionRun(tmp_path / "run", progress=lambda *a: seen.append(a), **kwargs)
    first_chunk = run.score(0, 4)  # Fisher and unlearning happen on demand
    assert {"fisher", "unlearn", "score_base", "score"} <= {s[0] for s in seen}
    with pytest.raises(IncompleteRunError):
        run.result()

    resumed = AttributionRun(tmp_path / "run", **kwargs)  # a retried task
    result = resumed.run(chunk_items=4)
    assert np.array_equal(result.scores[:4], first_chunk.scores)
    fresh = AttributionRun(tmp_path / "fresh", **kwargs).run()
    assert np.array_equal(result.scores, fresh.scores)
    assert int(np.argmax(result.scores)) == 4

    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    provenance = saved["provenance"]
    assert provenance["config"]["learning_rate"] == config.learning_rate
    assert provenance["manifest_digest"] == manifest.digest
    assert provenance["model_version"] == MODEL_VERSION and provenance["code_version"]
    assert saved["ids"] == list(manifest.ids) and len(saved["scores"]) == 6
    shares = result.shares("topk", k=3)
    assert math.isclose(shares.sum(), 1.0) and shares[4] == shares.max()

    with pytest.raises(StageMismatchError, match="config"):
        AttributionRun(tmp_path / "run", **(kwargs | {"config": tiny_config(learning_rate=1e-6)}))
    with pytest.raises(StageMismatchError, match="query"):
        other = target.example(manifest.items[0])
        AttributionRun(tmp_path / "run", **(kwargs | {"query": other}))
    with pytest.raises(StageMismatchError):  # the shared Fisher is for another manifest
        moved = Manifest(manifest.items, manifest.ids, "another-manifest")
        AttributionRun(tmp_path / "run2", **(kwargs | {"manifest": moved})).fisher()


def test_generated_query_example_matches_the_generator(trained):
    target, model, manifest = trained
    from generation.model import Generator

    generator = Generator(copy.deepcopy(model).use_fused_attention(True), target.config, "cpu")
    spec = GenerationSpec(
        references=[ReferenceCondition(manifest.items[0].item.windows[0][1], "mood", 0.8)],
        seconds=1.0, seed=3, steps=2,
    )  # fmt: skip
    cond = target.spec_conditioning(spec)
    planned = generator._plan(spec).cond
    assert all(
        torch.equal(a, b) for a, b in zip(cond.to_tensors(), planned.to_tensors(), strict=True)
    )
    logmel = generator.generate_mel(spec)
    query = target.query_example(logmel, cond)
    frames = target.config.mel.frames_for(target.config.dit.max_seconds)
    assert query.x0.shape == (1, target.config.mel.n_mels, frames)
    assert int(query.mask.sum()) == logmel.shape[1] < frames


def test_a_long_output_is_attributed_as_the_windows_it_was_sampled_in(trained):
    """A 4-s output of a 2-s model: one query example per continuation window (its own
    timing), and the unlearning gradient is the mean of the windows' gradients."""
    target, model, manifest = trained
    from generation.model import Generator, continuation_windows

    generator = Generator(copy.deepcopy(model).use_fused_attention(True), target.config, "cpu")
    spec = GenerationSpec(
        references=[ReferenceCondition(manifest.items[0].item.windows[0][1], "mood", 0.8)],
        seconds=4.0, seed=3, steps=2,
    )  # fmt: skip
    logmel = generator.generate_mel(spec)
    windows = continuation_windows(logmel.shape[1], target.config)
    query = target.query_example(logmel, target.spec_conditioning(spec))
    assert query.batch_size == len(windows) == 3
    fps = target.config.mel.frames_per_second
    for row, (start, length) in enumerate(windows):
        assert float(query.cond.seconds_start[row]) == pytest.approx(start / fps, rel=1e-6)
        assert float(query.cond.seconds_total[row]) == pytest.approx(length / fps, rel=1e-6)
        assert int(query.mask[row].sum()) == length
    config = tiny_config(layer_group="cross_attn_kv")
    names = target.layer_groups(model)["cross_attn_kv"]
    whole = unlearning_gradient(target, model, query, config, names=names, query_key="long")
    parts = [
        unlearning_gradient(
            target,
            model,
            Example(query.x0[r : r + 1], query.cond.index(slice(r, r + 1)), query.mask[r : r + 1]),
            config,
            names=names,
            query_key="long",
        )  # fmt: skip
        for r in range(len(windows))
    ]
    for name in names:
        mean = sum(p[name] for p in parts) / len(parts)
        scale = float(mean.abs().max())  # float32 round-off of a sum of three windows
        torch.testing.assert_close(whole[name], mean, rtol=1e-4, atol=1e-4 * scale)


# -- shares, evaluation ------------------------------------------------------------------------


def test_shares_are_non_negative_and_sum_to_one():
    scores = np.array([3e-6, -1e-6, 5e-6, 0.0, 1e-6])
    for shares in (softmax_shares(scores), softmax_shares(scores, "std"), topk_shares(scores, 2)):
        assert np.all(shares >= 0) and math.isclose(shares.sum(), 1.0)
    top = topk_shares(scores, 2)
    assert np.count_nonzero(top) == 2 and top[2] > top[0] > 0
    assert np.count_nonzero(topk_shares(scores, 10)) == 3  # only positive scores share
    assert softmax_shares(scores, 1e-6).argmax() == 2
    assert np.allclose(softmax_shares(np.zeros(4)), 0.25)
    view = minmax(scores)
    assert view.min() == 0 and view.max() == 1
    with pytest.raises(NormalisationError):
        topk_shares(-np.abs(scores) - 1, 3)
    with pytest.raises(NormalisationError):
        softmax_shares([1.0, float("nan")])


def test_rank_and_spearman():
    assert target_rank([0.1, 0.5, 0.2], 1) == 1
    assert target_rank([0.1, 0.5, 0.2], 0) == 3
    assert target_rank([0.0, 0.0, 0.0], 0) == 3  # ties count against the target
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833)  # scipy's value


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((400, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shifted = frechet_distance(a, a + np.array([2.0, 0, 0, 0]))
    assert shifted == pytest.approx(4.0, rel=1e-6)
    b = rng.standard_normal((400, 4)) * 2.0
    value, method = frechet_distance(a, b, return_method=True)
    assert method == "sqrtm" and value > 3.0
    # fewer samples than dimensions: singular covariances, still finite and >= 0
    few = frechet_distance(rng.standard_normal((5, 16)), rng.standard_normal((6, 16)))
    assert np.isfinite(few) and few >= 0
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    by_sqrtm, _ = trace_sqrt_product(c1, c2)
    s = np.linalg.cholesky(c1)  # tr sqrt(C1 C2) = tr sqrt(L^T C2 L)
    by_eig = np.sqrt(np.linalg.eigvalsh(s.T @ c2 @ s)).sum()
    assert by_sqrtm == pytest.approx(by_eig, rel=1e-8)


# -- fast path ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rademacher", "gaussian", "countsketch"])
def test_projections_preserve_inner_products(kind):
    torch.manual_seed(0)
    shapes = {"a": (300, 40), "b": (5000,)}
    x = {n: torch.randn(2, *s) for n, s in shapes.items()}
    x["b"][1] = x["b"][0] + 0.5 * torch.randn(5000)  # correlated with row 0
    x["a"][1] = x["a"][0] + 0.5 * torch.randn(300, 40)
    projector = Projector(shapes, dim=2048, kind=kind, seed=1)
    px = projector.project(x)
    assert torch.equal(px, Projector(shapes, dim=2048, kind=kind, seed=1).project(x))
    flat = torch.cat([x["a"].reshape(2, -1), x["b"]], dim=1)
    exact = flat @ flat.T
    assert torch.allclose(px @ px.T, exact, rtol=0.1)


def test_build_target_by_name():
    target = build_target("mel-dit", config=GeneratorConfig.tiny())
    assert isinstance(target, PlatformTarget) and isinstance(target, AttributionTarget)
    with pytest.raises(TDAConfigError):
        build_target("stable-audio")


def test_fast_path_matches_exact_scores_in_the_linear_regime(trained, fisher, tmp_path):
    """At the platform's small learning rate the exact scores are the first-order ones; the
    index (same draws) reproduces them up to its random projection."""
    target, model, manifest = trained
    config = tiny_config(projection="countsketch", projection_dim=8192)
    index = FastIndex.build(target, model, manifest, fisher, config, model_version=MODEL_VERSION)
    assert index.features.shape == (6, 1, config.projection_dim)
    cache = BaseLossCache(
        tmp_path, target=target, model_version=MODEL_VERSION, manifest=manifest, config=config,
        device=torch.device("cpu"),
    )  # fmt: skip
    agreement = []
    for q in (0, 3, 5):
        query = target.example(manifest.items[q])
        result = unlearn(target, model, query, fisher, config, n_items=6, query_key=f"t{q}")
        exact = score_chunk(target, model, result.model, manifest, config, 0, 6, cache=cache)
        fast = index.scores(target, model, query, fisher, config, query_key=f"t{q}")
        agreement.append(compare(exact.scores, fast))
    print("fast vs exact:", agreement)
    assert all(a["pearson"] > 0.95 for a in agreement), agreement
    assert all(a["top1_agrees"] == 1.0 for a in agreement), agreement
    saved = index.save(tmp_path / "fast.pt")
    loaded = FastIndex.load(
        saved, model_version=MODEL_VERSION, manifest_digest=manifest.digest, config=config
    )
    assert torch.equal(loaded.features, index.features)
    with pytest.raises(StageMismatchError):
        FastIndex.load(
            saved, model_version=MODEL_VERSION, manifest_digest=manifest.digest,
            config=tiny_config(projection_dim=64),
        )  # fmt: skip


def test_fast_query_draws_are_configurable_and_default_to_the_unlearning_draws(trained, fisher):
    target, model, manifest = trained
    config = tiny_config()
    index = FastIndex.build(target, model, manifest, fisher, config, model_version=MODEL_VERSION)
    query = target.example(manifest.items[2])

    def scores(draws: int) -> np.ndarray:
        changed = dataclasses.replace(config, fast_query_timesteps=draws)
        return index.scores(target, model, query, fisher, changed, query_key="q")

    assert np.array_equal(scores(0), scores(config.unlearn_timesteps))  # 0: the same draws
    assert not np.array_equal(scores(0), scores(2))  # fewer draws: another (cheaper) estimate
    with pytest.raises(TDAConfigError, match="fast_query_timesteps"):
        TDAConfig(fast_query_timesteps=-1)
