"""The generative model (generation/model): tiny configs on CPU, no database."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from generation.model import (
    Conditioning,
    DiffusionTransformer,
    DiTConfig,
    GenerationSpec,
    Generator,
    GeneratorConfig,
    GeneratorError,
    GeneratorTrainingItem,
    MelConfig,
    MelFrontend,
    ReferenceCondition,
    SamplerConfig,
    TrainConfig,
    canonical_example,
    diffusion_loss,
    layer_groups,
    load_generator,
    save_generator,
    train_generator,
)
from generation.model.benchmark import measure_real_time_factor
from generation.model.checkpoint import read_checkpoint
from generation.model.pipeline import continuation_windows
from generation.model.training import _choose_window

CONFIG = GeneratorConfig.tiny()
SR = CONFIG.mel.sample_rate
FREQS = (300.0, 2400.0)  # one synthetic "recording" per tone


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(512)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _tone(freq: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))).astype(
        np.float32
    )


def _random_model(seed: int = 0) -> DiffusionTransformer:
    """A DiT whose zero-initialised layers are randomised too, so every path is live."""
    torch.manual_seed(seed)
    model = DiffusionTransformer(CONFIG.dit, CONFIG.mel.n_mels)
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.abs().sum():
                parameter.normal_(0, 0.05)
    return model.eval()


def _cond(batch: int = 1, refs: int = 1, seed: int = 0) -> Conditioning:
    from generation.model import collate

    return collate(
        [
            Conditioning.build(
                np.stack([_unit(seed + 10 * b + r) for r in range(refs)]),
                list(range(refs)),
                [1.0] * refs,
                text=_unit(seed + 99),
                seconds_total=1.0,
            )
            for b in range(batch)
        ]
    )


def _spec(seed: int = 1, **kw) -> GenerationSpec:
    values = dict(references=[ReferenceCondition(_unit(0), "mood", 1.0)], seconds=1.5, seed=seed)
    values.update(kw)
    return GenerationSpec(**values)


@pytest.fixture(scope="module")
def generator() -> Generator:
    return Generator(_random_model(), CONFIG, device="cpu")


@pytest.fixture(scope="module")
def tones() -> list[GeneratorTrainingItem]:
    frontend = MelFrontend(CONFIG.mel)
    items = []
    for i, freq in enumerate(FREQS):
        rng = np.random.default_rng(i)
        base = _unit(100 + i)
        windows = [
            (start, (base + 0.005 * rng.standard_normal(512)).astype(np.float32))
            for start in (0.0, 1.0, 2.0)
        ]
        items.append(GeneratorTrainingItem(i + 1, frontend.logmel(_tone(freq, 3.0)), windows, 1.0))
    return items


@pytest.fixture(scope="module")
def trained(tones):
    # 300 tiny steps learn the tones' steering from single windows; with half the crops on
    # track vectors the outputs still follow their references but differ less (0.38 vs 0.5).
    return train_generator(tones, CONFIG, TrainConfig.tiny(steps=300, track_reference_prob=0.0))


# -- configs --------------------------------------------------------------------------------


def test_configs_round_trip_and_reject_unknown_keys():
    config = GeneratorConfig.tiny().with_stats([0.5] * 40, 2.0)
    assert GeneratorConfig.from_dict(config.to_dict()) == config
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()
    with pytest.raises(GeneratorError, match="unknown GeneratorConfig keys"):
        GeneratorConfig.from_dict({**config.to_dict(), "extra": 1})
    with pytest.raises(GeneratorError, match="unknown DiTConfig keys"):
        GeneratorConfig.from_dict({"dit": {**DiTConfig().to_dict(), "dropout": 0.1}})
    with pytest.raises(GeneratorError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({"stepz": 3})
    with pytest.raises(GeneratorError, match="unknown MelConfig keys"):
        MelConfig.from_dict({"sr": 16000})
    with pytest.raises(GeneratorError, match="multiple of heads"):
        DiTConfig(dim=30, heads=4)


# -- audio ----------------------------------------------------------------------------------


def test_griffin_lim_of_a_sine_peaks_at_its_frequency():
    frontend = MelFrontend(MelConfig())
    rate = frontend.sample_rate
    t = np.arange(rate * 2) / rate
    logmel = frontend.logmel((0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32))
    assert logmel.shape == (80, MelConfig().frames_for(2.0))
    audio = frontend.to_audio(logmel, len(t))
    assert audio.shape == t.shape and np.all(np.isfinite(audio))
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * rate / len(audio) - 440.0) < 15.0
    # and it is close to the original's log-mel again
    assert np.abs(frontend.logmel(audio) - logmel)[:, 4:-4].mean() < 0.3


# -- model and loss -------------------------------------------------------------------------


def test_layer_groups_name_real_parameters():
    model = _random_model()
    names = dict(model.named_parameters())
    groups = layer_groups(model)
    assert set(groups) == {"blocks", "self_attn", "cross_attn", "cross_attn_kv"}
    for group, members in groups.items():
        assert members, group
        assert set(members) <= set(names)
    assert "blocks.0.cross_attn.to_k.weight" in groups["cross_attn_kv"]
    assert "blocks.1.self_attn.to_out.weight" in groups["self_attn"]
    assert set(groups["cross_attn_kv"]) <= set(groups["cross_attn"]) <= set(groups["blocks"])
    assert not any("cross_attn.to_q" in n for n in groups["cross_attn_kv"])


def _batch(frames: int = 37, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(2, CONFIG.mel.n_mels, frames, generator=g)
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0.3, 0.8])
    mask = torch.ones(2, frames, dtype=torch.bool)
    mask[0, 21:] = False  # padding that does not end on a patch boundary
    return x0, noise, t, mask


def test_padded_frames_change_only_the_unmasked_loss():
    model = _random_model()
    x0, noise, t, mask = _batch()
    cond = _cond(batch=2)
    other_x0, other_noise = x0.clone(), noise.clone()
    other_x0[0, :, 21:] += 5.0
    other_noise[0, :, 21:] = -other_noise[0, :, 21:]
    with torch.no_grad():
        masked = diffusion_loss(model, x0, cond, t, noise, mask=mask, frame_mask=mask)
        masked2 = diffusion_loss(model, other_x0, cond, t, other_noise, mask=mask, frame_mask=mask)
        full = diffusion_loss(model, x0, cond, t, noise, frame_mask=mask)
        full2 = diffusion_loss(model, other_x0, cond, t, other_noise, frame_mask=mask)
    assert masked.shape == (2,)
    torch.testing.assert_close(masked, masked2, rtol=1e-5, atol=1e-6)
    assert abs(float(full2[0] - full[0])) > 1e-2
    torch.testing.assert_close(full[1], full2[1])  # the unpadded sample is untouched


def test_loss_has_no_hidden_randomness_and_averages_draws():
    model = _random_model()
    x0, noise, _, mask = _batch()
    cond = _cond(batch=2)
    draws = torch.tensor([[0.1, 0.5, 0.9], [0.2, 0.6, 0.95]])
    noises = torch.randn(2, 3, *x0.shape[1:], generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        first = diffusion_loss(model, x0, cond, draws, noises, mask=mask, frame_mask=mask)
        second = diffusion_loss(model, x0, cond, draws, noises, mask=mask, frame_mask=mask)
        singles = torch.stack(
            [
                diffusion_loss(model, x0, cond, draws[:, k], noises[:, k], mask, mask)
                for k in range(3)
            ]
        ).mean(0)
    assert torch.equal(first, second)
    torch.testing.assert_close(first, singles, rtol=1e-5, atol=1e-6)
    ends = torch.tensor([[0.0, 1.0], [1e-6, 0.999]])  # clean and pure-noise ends stay finite
    with torch.no_grad():
        assert torch.all(torch.isfinite(diffusion_loss(model, x0, cond, ends, noises[:, :2])))


def test_masked_reference_slots_are_ignored_and_weights_matter():
    model = _random_model()
    x = torch.randn(1, CONFIG.mel.n_mels, 20, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.5])
    one = _cond(refs=1)
    two = _cond(refs=2)
    two.ref_mask[0, 1] = False  # a second reference slot that is absent
    heavier = dataclasses.replace(one, weights=one.weights * 1.5)
    with torch.no_grad():
        out_one, out_two = model(x, t, one), model(x, t, two)
        out_heavy, out_uncond = model(x, t, heavier), model(x, t, one.unconditional())
    torch.testing.assert_close(out_one, out_two, rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # plain-math attention computes the same
        torch.testing.assert_close(model.use_fused_attention(False)(x, t, two), out_one)
    assert (out_one - out_heavy).abs().mean() > 1e-3
    assert (out_one - out_uncond).abs().mean() > 1e-3


@pytest.mark.filterwarnings("ignore:There is a performance drop")  # fused SDPA under vmap
@pytest.mark.parametrize("fused", [True, False])
def test_per_sample_gradients_with_torch_func(fused):
    model = _random_model().use_fused_attention(fused)
    x0, noise, t, mask = _batch(frames=16)
    cond = _cond(batch=2)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_one(p, x0, noise, t, mask, *cond_tensors):
        c = Conditioning.from_tensors([c[None] for c in cond_tensors])
        functional = lambda *args: torch.func.functional_call(model, p, args)  # noqa: E731
        return diffusion_loss(functional, x0[None], c, t[None], noise[None], mask[None])[0]

    tensors = cond.to_tensors()
    in_dims = (None, 0, 0, 0, 0, *[0] * len(tensors))
    grads = torch.func.vmap(torch.func.grad(loss_one), in_dims=in_dims)(
        params, x0, noise, t, mask, *tensors
    )
    name = "blocks.0.cross_attn.to_v.weight"
    assert grads[name].shape == (2, *params[name].shape)
    assert torch.all(torch.isfinite(grads[name])) and grads[name].abs().sum() > 0
    # the same as one sample at a time with ordinary autograd
    model.zero_grad()
    diffusion_loss(
        model, x0[:1], cond.index(slice(0, 1)), t[:1], noise[:1], mask[:1]
    ).sum().backward()
    torch.testing.assert_close(grads[name][0], dict(model.named_parameters())[name].grad)


# -- sampling -------------------------------------------------------------------------------


def test_sampler_is_deterministic_per_seed(generator):
    first = generator.generate_mel(_spec(seed=1))
    assert np.array_equal(first, generator.generate_mel(_spec(seed=1)))
    assert np.abs(first - generator.generate_mel(_spec(seed=2))).mean() > 1e-2
    audio = generator.generate(_spec(seed=1))
    assert np.array_equal(audio, generator.generate(_spec(seed=1)))


def test_output_is_finite_sized_and_audible(generator):
    steps = []
    audio = generator.generate(_spec(seconds=1.25), progress=lambda s, n: steps.append((s, n)))
    assert audio.dtype == np.float32 and audio.shape == (int(1.25 * SR),)
    assert np.all(np.isfinite(audio)) and np.abs(audio).max() <= 1.0
    assert np.sqrt(np.mean(audio**2)) > 0.01
    assert abs(np.abs(audio).max() - 10 ** (-1 / 20)) < 1e-3  # peak at -1 dBFS
    assert steps[-1] == (CONFIG.sampler.steps, CONFIG.sampler.steps)
    unconditional = generator.generate(_spec(references=[], text_embedding=None))
    assert np.all(np.isfinite(unconditional))


def _with_sampler(generator: Generator, **changes) -> Generator:
    sampler = dataclasses.replace(generator.config.sampler, **changes)
    config = dataclasses.replace(generator.config, sampler=sampler)
    return Generator(generator.model, config, device="cpu")


def test_guidance_interval_limits_where_guidance_applies(generator):
    plain = generator.generate_mel(_spec(seed=3))
    everywhere = _with_sampler(generator, guidance_interval=(0.0, 1.0))
    assert np.array_equal(plain, everywhere.generate_mel(_spec(seed=3)))
    # 8 steps sample at t = 1, 0.875, ...: none lies in (0.9, 0.95), so no step is guided
    nowhere = _with_sampler(generator, guidance_interval=(0.9, 0.95))
    conditional_only = generator.generate_mel(_spec(seed=3, cfg_scale=1.0))
    assert np.allclose(nowhere.generate_mel(_spec(seed=3)), conditional_only, atol=1e-6)
    assert np.abs(conditional_only - plain).mean() > 1e-3
    middle = _with_sampler(generator, guidance_interval=(0.2, 0.8)).generate_mel(_spec(seed=3))
    assert np.abs(middle - plain).mean() > 1e-3


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"guidance_interval": (0.6, 0.4)}, "guidance_interval"),
        ({"guidance_interval": (0.0, 1.5)}, "guidance_interval"),
        ({"guidance_interval": (0.1,)}, "guidance_interval"),
    ],
)
def test_guidance_settings_are_checked(changes, message):
    with pytest.raises(GeneratorError, match=message):
        SamplerConfig.from_dict({**SamplerConfig().to_dict(), **changes})


def test_checkpoints_without_guidance_settings_load_with_plain_guidance():
    stored = SamplerConfig().to_dict()
    del stored["guidance_interval"]  # saved before guidance intervals existed
    assert SamplerConfig.from_dict(stored).guidance_interval == (0.0, 1.0)
    tuned = SamplerConfig(guidance_interval=(0.1, 0.9))
    assert SamplerConfig.from_dict(tuned.to_dict()) == tuned


def test_sdedit_strength_controls_distance_from_init(trained):
    generator = trained.generator
    init = _tone(FREQS[0], 1.5)
    init_mel = generator.frontend.logmel(init)

    def distance(strength: float) -> float:
        mel = generator.generate_mel(_spec(init_audio=init, strength=strength, seed=4))
        assert mel.shape == init_mel.shape
        return float(np.abs(mel - init_mel).mean())

    low, high = distance(0.1), distance(1.0)
    assert low < 0.5 < high
    assert low < high / 4


def test_inpainting_keeps_outside_and_changes_inside(trained):
    generator = trained.generator
    init = _tone(FREQS[0], 1.5)
    spec = _spec(init_audio=init, inpaint=(0.5, 1.0), references=[
        ReferenceCondition(_unit(101), "melody", 1.0)  # the other tone's embedding
    ])  # fmt: skip
    mel = generator.generate_mel(spec)
    init_mel = generator.frontend.logmel(init)
    hop = CONFIG.mel.hop_length
    first, last = int(0.5 * SR) // hop, -(-int(1.0 * SR) // hop) + 1
    outside = np.ones(mel.shape[1], dtype=bool)
    outside[first:last] = False
    # outside: the init's own mel (through normalise/denormalise: float rounding only)
    np.testing.assert_allclose(mel[:, outside], init_mel[:, outside], atol=1e-4)
    assert np.abs(mel[:, ~outside] - init_mel[:, ~outside]).mean() > 0.1
    audio = generator.generate(spec)
    assert audio.shape == init.shape
    np.testing.assert_array_equal(audio[: int(0.5 * SR)], init[: int(0.5 * SR)])
    np.testing.assert_array_equal(audio[int(1.0 * SR) :], init[int(1.0 * SR) :])
    assert (
        np.abs(audio[int(0.6 * SR) : int(0.9 * SR)] - init[int(0.6 * SR) : int(0.9 * SR)]).max()
        > 0.05
    )


# -- training -------------------------------------------------------------------------------


def test_training_lowers_the_loss(trained, tones):
    losses = trained.losses
    assert len(losses) == 300 and trained.steps_done == 300
    assert np.mean(losses[-30:]) < 0.8 * np.mean(losses[:30])
    # the same examples, timesteps and noise: trained model vs its initialisation
    torch.manual_seed(0)  # train_generator initialises the model from TrainConfig.seed
    initial = DiffusionTransformer(trained.generator.config.dit, CONFIG.mel.n_mels).eval()
    draws = torch.linspace(0.05, 0.95, 8)[None]
    for item in tones:
        x0, cond, mask = canonical_example(item, trained.generator.config)
        noise = torch.randn(1, 8, *x0.shape[1:], generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            before = diffusion_loss(initial, x0, cond, draws, noise, mask, mask)
            after = diffusion_loss(trained.generator.model, x0, cond, draws, noise, mask, mask)
        assert float(after) < 0.7 * float(before)


def test_fine_tuning_needs_the_parents_model_settings(trained, tones):
    other = dataclasses.replace(
        CONFIG, dit=dataclasses.replace(CONFIG.dit, depth=CONFIG.dit.depth + 1)
    )
    with pytest.raises(GeneratorError, match="parent generator's dit settings differ"):
        train_generator(tones, other, TrainConfig.tiny(steps=1), parent=trained.generator)
    child = train_generator(tones, CONFIG, TrainConfig.tiny(steps=1), parent=trained.generator)
    assert child.generator.config.mel_mean == trained.generator.config.mel_mean


def test_conditioning_steers_the_output(trained, tones):
    generator = trained.generator
    peaks = [int(np.argmax(item.logmel.mean(axis=1))) for item in tones]
    for seed in (1, 2):
        mels = [
            generator.generate_mel(
                GenerationSpec([ReferenceCondition(_unit(100 + i), "style", 1.0)], 1.5, seed)
            )
            for i in range(len(tones))
        ]
        assert np.abs(mels[0] - mels[1]).mean() > 0.5
        for i, mel in enumerate(mels):  # each reference brings back its own recording's tone
            assert abs(int(np.argmax(mel.mean(axis=1))) - peaks[i]) <= 2


def test_training_records_usage_padding_and_stats(trained, tones):
    usage = trained.usage
    assert set(usage) == {1, 2}
    assert sum(u["crops"] for u in usage.values()) == 300 * 2
    for used in usage.values():
        assert 0.5 <= used["mean_crop_seconds"] <= 2.0
        assert used["padded_crops"] > 0 and used["padded_frames"] > 0
    config = trained.generator.config
    assert config.mel_mean is not None and len(config.mel_mean) == 40 and config.mel_std > 0
    assert trained.crop_settings["max_seconds"] == 2.0
    assert trained.device == "cpu" and trained.seconds > 0


def test_canonical_example_and_reference_windows(tones):
    item = tones[0]
    x0, cond, mask = canonical_example(item, CONFIG)
    frames = CONFIG.mel.frames_for(CONFIG.dit.max_seconds)
    assert x0.shape == (1, 40, frames) and mask.shape == (1, frames) and bool(mask.all())
    short = dataclasses.replace(item, logmel=item.logmel[:, :50])
    x0, cond, mask = canonical_example(short, CONFIG)
    assert int(mask.sum()) == 50 and x0.shape[-1] == frames
    assert torch.equal(x0, canonical_example(short, CONFIG)[0])
    assert cond.embeddings.shape == (1, 1, 512) and bool(cond.ref_mask.all())
    # windows at 0, 1, 2 s of 1 s each: a crop over [0, 1.5) takes the window at 2 s
    assert _choose_window(item, 0.0, 1.5, None) == 2
    assert _choose_window(item, 0.0, 3.0, None) in (0, 1, 2)
    lonely = dataclasses.replace(item, windows=item.windows[:1])
    assert _choose_window(lonely, 0.0, 3.0, None) == 0


# -- checkpoints ----------------------------------------------------------------------------


def test_checkpoint_round_trip_and_strict_loading(generator, tmp_path):
    path = tmp_path / "gen.pt"
    digest = save_generator(path, generator, {"note": "test"}, dtype=torch.float32)
    assert len(digest) == 64
    loaded = load_generator(path, device="cpu")
    assert loaded.config == generator.config and loaded.metadata["note"] == "test"
    assert loaded.metadata["sha256"] == digest
    assert np.array_equal(loaded.generate(_spec()), generator.generate(_spec()))

    half = tmp_path / "half.pt"
    save_generator(half, generator, {})
    again = load_generator(half)
    assert np.abs(again.generate_mel(_spec()) - generator.generate_mel(_spec())).mean() < 0.05

    data = read_checkpoint(path)
    broken = dict(data, state_dict=dict(data["state_dict"]))
    broken["state_dict"]["patch_in.weight"] = torch.zeros(3, 3)
    torch.save(broken, tmp_path / "shape.pt")
    with pytest.raises(GeneratorError, match="does not match"):
        load_generator(tmp_path / "shape.pt")
    missing = dict(data, state_dict=dict(data["state_dict"]))
    del missing["state_dict"]["blocks.0.cross_attn.to_k.weight"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(GeneratorError, match="does not match"):
        load_generator(tmp_path / "missing.pt")
    torch.save(dict(data, format=99), tmp_path / "format.pt")
    with pytest.raises(GeneratorError, match="format"):
        load_generator(tmp_path / "format.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(GeneratorError, match="not a readable"):
        load_generator(tmp_path / "junk.pt")
    with pytest.raises(GeneratorError, match="not found"):
        load_generator(tmp_path / "absent.pt")


# -- requests -------------------------------------------------------------------------------

REF = ReferenceCondition(_unit(0), "mood", 1.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"references": [ReferenceCondition(_unit(0), "vibe", 1.0)]}, "unknown role"),
        ({"references": [ReferenceCondition(np.ones(256, np.float32), "mood", 1.0)]}, "shape"),
        ({"references": [ReferenceCondition(np.zeros(512, np.float32), "mood", 1.0)]}, "non-zero"),
        ({"references": [ReferenceCondition(_unit(0), "mood", float("nan"))]}, "weight"),
        ({"references": [ReferenceCondition(_unit(0), "mood", -1.0)]}, "weight"),
        ({"references": [dataclasses.replace(REF, weight=0.0)] * 2}, "all zero"),
        ({"references": [REF] * 5}, "at most 4"),
        ({"seconds": 0.0}, "seconds"),
        ({"seconds": 6.5}, "seconds"),
        ({"seconds": float("nan")}, "seconds"),
        ({"text_embedding": np.ones(3, np.float32)}, "text embedding"),
        ({"steps": 0}, "steps"),
        ({"seed": -1}, "seed"),
        ({"cfg_scale": -1.0}, "cfg_scale"),
        ({"init_audio": np.zeros(int(2.5 * SR), np.float32)}, "at most 2"),
        ({"init_audio": np.full(SR, np.nan, np.float32)}, "NaN"),
        ({"inpaint": (0.1, 0.5)}, "needs init_audio"),
        ({"init_audio": np.zeros(SR, np.float32), "inpaint": (0.5, 1.5)}, "inside"),
        ({"init_audio": np.zeros(SR, np.float32), "inpaint": (0.6, 0.4)}, "inside"),
        ({"init_audio": np.zeros(SR, np.float32), "strength": 0.0}, "strength"),
        ({"strength": 0.5}, "strength applies"),
    ],
)
def test_generation_spec_validation(generator, changes, message):
    with pytest.raises(GeneratorError, match=message):
        generator.generate(_spec(**changes))


def test_long_outputs_continue_the_first_window_exactly(generator):
    """A 5-s output from a 2-s model: the first window is the 2-s output of the same seed
    (same timing conditioning), and every later window starts with the kept overlap."""
    windows = continuation_windows(CONFIG.mel.frames_for(5.0), CONFIG)
    overlap = CONFIG.mel.frames_for(CONFIG.sampler.continuation_overlap_seconds)
    assert len(windows) == 3 and windows[0] == (0, CONFIG.mel.frames_for(2.0))
    for (start, length), (next_start, _) in zip(windows, windows[1:], strict=False):
        assert start + length - next_start == overlap
    assert sum(length for _, length in windows) - overlap * 2 == CONFIG.mel.frames_for(5.0)
    calls = []
    long = generator.generate_mel(_spec(seconds=5.0, seed=7), progress=lambda d, t: calls.append(t))
    short = generator.generate_mel(_spec(seconds=2.0, seed=7))
    assert long.shape == (CONFIG.mel.n_mels, CONFIG.mel.frames_for(5.0))
    np.testing.assert_allclose(long[:, : short.shape[1]], short, atol=1e-5)
    assert set(calls) == {3 * CONFIG.sampler.steps}
    audio = generator.generate(_spec(seconds=5.0, seed=7))
    assert len(audio) == CONFIG.mel.samples_for(5.0) and np.all(np.isfinite(audio))


def test_benchmark_reports_stages(generator):
    figures = measure_real_time_factor(generator, seconds=1.0, repeats=1, threads=1)
    assert figures["rtf"] > 0 and figures["sampling_seconds"] > 0
    assert figures["griffin_lim_seconds"] > 0 and figures["torch_threads"] == 1
