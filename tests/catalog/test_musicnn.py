"""The PyTorch port of musicnn: weights mapping, TF conventions, front end, tags on real music.

`musicnn_tf_reference.json` holds the logits musicnn's own TF graph (its `models.define_model`
under TensorFlow 2.21 `tf.compat.v1` with tf_keras, restored from the same checkpoints) gives for
`reference_patches()`; TensorFlow is not a dependency, so the file was written once off-line.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from catalog.encoders import EncoderError
from catalog.encoders import musicnn as mn
from tests.conftest import REAL_OGG, require_real_audio

if importlib.util.find_spec("musicnn") is None:
    pytest.skip(
        "musicnn not installed (pip install --no-deps musicnn==0.1.0)", allow_module_level=True
    )

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Orchestral game music (Debian wesnoth-1.16-music); the electronic REAL_OGG is in CI's packages.
ORCHESTRAL_OGG = Path("/usr/share/games/wesnoth/1.16/data/core/music/silvan_sanctuary.ogg")
REFERENCE = Path(__file__).with_name("musicnn_tf_reference.json")


def reference_patches() -> np.ndarray:
    """Two deterministic (187, 96) log-mel-like patches: a tonal sweep and bass 'beats'."""
    t = np.arange(187, dtype=np.float32)[:, None]
    f = np.arange(96, dtype=np.float32)[None, :]
    tonal = 2.0 + 1.5 * np.sin(0.07 * t + 0.3 * f) * np.cos(0.05 * f)
    beats = 0.5 + 4.0 * np.exp(-f / 30.0) * (np.sin(0.4 * t) > 0.6)
    return np.stack([tonal, beats]).astype(np.float32)


def excerpt(path: Path, start: float, seconds: float) -> tuple[np.ndarray, int]:
    info = sf.info(str(path))
    rate = info.samplerate
    audio, _ = sf.read(
        str(path),
        start=int(start * rate),
        frames=int(seconds * rate),
        dtype="float32",
        always_2d=True,
    )
    return audio.mean(axis=1), rate


@pytest.mark.parametrize("model", list(mn.MODELS))
def test_network_matches_tensorflow(model):
    network = mn.load_network(mn.MODELS[model], mn.musicnn_package_dir())
    expected = np.array(json.loads(REFERENCE.read_text())[model])

    with torch.inference_mode():
        logits = network(torch.from_numpy(reference_patches()))["logits"].numpy()

    np.testing.assert_allclose(logits, expected, atol=2e-4, rtol=0)


def test_every_checkpoint_variable_is_mapped():
    from catalog.encoders.tf_checkpoint import read_checkpoint

    config = mn.MODELS["MTT_musicnn"]
    variables = read_checkpoint(mn.musicnn_package_dir() / config.name)
    network = mn.Musicnn(config)
    mn.load_tf_weights(network, variables)  # all 64 network variables, none left over

    for broken, message in [
        ({k: v for k, v in variables.items() if k != "conv2d_6/bias"}, "missing.*conv2d_6/bias"),
        ({**variables, "extra/kernel": np.zeros(3, np.float32)}, "unused.*extra/kernel"),
        ({**variables, "dense/kernel": variables["dense/kernel"].T}, "wrong shapes.*dense"),
    ]:
        with pytest.raises(EncoderError, match=message):
            mn.load_tf_weights(mn.Musicnn(config), broken)


def test_same_padding_follows_tensorflow():
    # TF pads 'same' convolutions with the odd sample after: 128 taps -> 63 before, 64 after
    assert [mn._tf_same_pad(k) for k in (128, 64, 32, 3)] == [(63, 64), (31, 32), (15, 16), (1, 1)]

    block = mn._FreqPooledConv(1, (4, 1), mn._tf_same_pad(4)).eval()
    with torch.no_grad():
        block.conv.weight.zero_()
        block.conv.weight[0, 0, 0, 0] = 1.0  # out[t] = x[t - pad_before]
        block.conv.bias.zero_()
        x = torch.arange(1.0, 11.0).reshape(1, 1, 10, 1)
        out = block(x)[0, 0]
    scale = 1 / np.sqrt(1 + mn.TF_BN_EPS)  # inference batch norm with mean 0, variance 1
    np.testing.assert_allclose(out.numpy() / scale, [0, *range(1, 10)], rtol=1e-6)


def test_log_mel_and_patches():
    audio = np.random.default_rng(0).uniform(-0.1, 0.1, 10 * mn.SAMPLE_RATE).astype(np.float32)

    spec = mn.log_mel(audio, mn.SAMPLE_RATE)

    assert spec.shape == (1 + audio.size // mn.HOP_LENGTH, mn.N_MELS) and spec.dtype == np.float32
    assert mn.patches(spec).shape == (spec.shape[0] // 187, 187, 96)
    resampled = mn.log_mel(audio[::2].copy(), mn.SAMPLE_RATE // 2)  # resampled to 16 kHz
    assert abs(resampled.shape[0] - spec.shape[0]) <= 1


@pytest.mark.parametrize("kind", ["white noise", "full-scale sine"])
def test_loud_audio_stays_finite(kind):
    rate = 22_050
    t = np.arange(4 * rate) / rate
    audio = (
        np.random.default_rng(1).uniform(-1.0, 1.0, t.size)
        if kind == "white noise"
        else np.sin(2 * np.pi * 440.0 * t)
    ).astype(np.float32)
    assert np.abs(audio).max() > 0.99

    spec = mn.log_mel(audio, rate)

    assert np.isfinite(spec).all()
    # 10000 * mel above float16's largest value: musicnn's float16 arithmetic would give inf
    assert spec.max() > np.log10(float(np.finfo(np.float16).max) + 1)
    embedder = mn.MusicnnEmbedder("MTT_musicnn")
    for layer, dim in [("penultimate", 200), ("max_pool", 753), ("mean_pool", 753)]:
        vectors = embedder.embed(audio, rate, layer=layer)
        assert vectors.shape == (1, dim) and np.isfinite(vectors).all()


def test_orchestral_recording_is_tagged_classical():
    if not ORCHESTRAL_OGG.is_file():
        pytest.skip(f"{ORCHESTRAL_OGG} missing (Debian package wesnoth-1.16-music)")
    audio, rate = excerpt(ORCHESTRAL_OGG, start=30, seconds=15)

    top = [tag for tag, _ in mn.MusicnnEmbedder("MTT_musicnn").tags(audio, rate, top=5)]

    assert {"classical", "strings", "violin"} & set(top), top
    assert not {"techno", "electronic", "rock"} & set(top), top


def test_electronic_recording_is_tagged_electronic():
    require_real_audio(REAL_OGG)
    audio, rate = excerpt(REAL_OGG, start=30, seconds=15)

    tags = mn.MusicnnEmbedder("MTT_musicnn").tags(audio, rate)

    assert len(tags) == 50 and tags[0][1] >= tags[-1][1]
    assert {"techno", "electronic"} & {tag for tag, _ in tags[:5]}, tags[:5]


def test_embedder_api():
    mtt, msd_vgg = mn.MusicnnEmbedder(), mn.MusicnnEmbedder("MSD_vgg")
    audio = np.random.default_rng(2).uniform(-0.3, 0.3, 7 * mn.SAMPLE_RATE).astype(np.float32)

    assert len(mtt.labels) == 50 and mtt.labels[:2] == ("guitar", "classical")
    assert msd_vgg.labels[0] == "rock"
    assert (mtt.sample_rate, round(mtt.patch_seconds, 3)) == (16_000, 2.992)
    assert msd_vgg.embed(audio, mn.SAMPLE_RATE).shape == (2, 256)  # 7 s -> 2 patches
    assert mtt.taggram(audio, mn.SAMPLE_RATE).shape == (2, 50)
    # weights are read once per process and shared
    assert mn.load_network(mtt.config, mtt.package_dir) is mn.load_network(
        mn.MODELS["MTT_musicnn"], mn.musicnn_package_dir()
    )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: mn.MusicnnEmbedder("MTT_musicnn_big"), "unknown musicnn model"),
        (
            lambda: mn.MusicnnEmbedder().embed(np.zeros(16_000 * 4, np.float32), 16_000, "x"),
            "unknown layer",
        ),
        (
            lambda: mn.MusicnnEmbedder("MTT_vgg").embed(np.zeros(16_000 * 4), 16_000, "max_pool"),
            "unknown layer",
        ),
        (
            lambda: mn.MusicnnEmbedder().embed(np.zeros(mn.MIN_SAMPLES - 1, np.float32), 16_000),
            "too short",
        ),
        (lambda: mn.MusicnnEmbedder().tags(np.zeros(2 * 44_100, np.float32), 44_100), "too short"),
        (
            lambda: mn.MusicnnEmbedder().embed(np.full(16_000 * 4, np.nan, np.float32), 16_000),
            "NaN or infinite",
        ),
        (
            lambda: mn.MusicnnEmbedder().embed(np.zeros((2, 16_000 * 4), np.float32), 16_000),
            "mono 1-D",
        ),
        (lambda: mn.MusicnnEmbedder().embed(np.zeros(16_000 * 4, np.int16), 16_000), "float audio"),
        (lambda: mn.MusicnnEmbedder(package_dir="/nonexistent").labels, "configuration"),
    ],
)
def test_bad_input_is_refused(make, message):
    with pytest.raises(EncoderError, match=message):
        make()


def test_shortest_accepted_audio_gives_one_patch():
    audio = np.zeros(mn.MIN_SAMPLES, np.float32)
    assert mn.MusicnnEmbedder().embed(audio, mn.SAMPLE_RATE).shape == (1, 200)
