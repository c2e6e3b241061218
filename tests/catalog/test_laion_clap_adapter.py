"""The LAION-CLAP adapter against a small checkpoint in the real file's format.

The real music checkpoint (HTSAT-base + RoBERTa-base, ~2 GB) is not available to tests, so we
write a checkpoint the same way laion_clap's training does (`{"epoch", "state_dict":
{"module.<key>"}}`, including `text_branch.embeddings.position_ids`) for HTSAT-tiny and a one-layer
RoBERTa with a tokenizer trained here. Reference embeddings come from laion_clap's own
`CLAP_Module` on the same weights, so the adapter's preprocessing is checked, not just its shapes.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from catalog.encoders import AudioTextEncoder, EncoderError, load_encoder
from catalog.encoders import laion as laion_adapter
from tests.conftest import REAL_OGG, require_real_audio

pytestmark = pytest.mark.filterwarnings("ignore:torch.meshgrid:UserWarning")

SENTENCES = [
    "calm piano with soft strings",
    "fast electronic drums and deep bass",
    "a female voice singing over acoustic guitar",
    "slow ambient synth pads",
]
TEXTS = ["calm piano", "electronic drums and bass", "a word it never saw: xylophone"]


def write_text_model_dir(directory: Path) -> Path:
    """A tiny RoBERTa config + byte-level BPE tokenizer, laid out as `save_pretrained` does.

    hidden_size stays 768 because laion_clap hard-codes `Linear(768, 512)` after RoBERTa.
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaTokenizer

    directory.mkdir(parents=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        SENTENCES,
        vocab_size=320,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],  # roberta-base's ids 0..4
        show_progress=False,
    )
    bpe.save_model(str(directory))
    tokenizer = RobertaTokenizer.from_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=768,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=80,  # 77 tokens + RoBERTa's padding offset
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    ).save_pretrained(str(directory))
    return directory


def build_reference_module(text_dir: Path):
    """laion_clap's own `CLAP_Module` (HTSAT-tiny), with the hub replaced by `text_dir`."""
    import laion_clap.hook
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel

    # The hook imports laion_clap's package again, under the top-level name `clap_module`
    # (importable only once `laion_clap` has put its folder on sys.path).
    hook_model = importlib.import_module("clap_module.model")

    class LocalRoberta:
        @staticmethod
        def from_pretrained(name, *args, **kwargs):
            assert name == "roberta-base"
            return RobertaModel(RobertaConfig.from_pretrained(str(text_dir)))

    class LocalTokenizer:
        @staticmethod
        def from_pretrained(name, *args, **kwargs):
            assert name == "roberta-base"
            return AutoTokenizer.from_pretrained(str(text_dir))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hook_model, "RobertaModel", LocalRoberta)
        patch.setattr(laion_clap.hook, "RobertaTokenizer", LocalTokenizer)
        module = laion_clap.hook.CLAP_Module(enable_fusion=False, device="cpu", amodel="HTSAT-tiny")
    module.eval()
    return module


def write_test_checkpoint(directory: Path, model, *, sidecar: dict | None = None) -> Path:
    """Save `model` the way laion_clap training does, plus the adapter's JSON sidecar."""
    import torch

    state = dict(model.state_dict())
    max_positions = model.text_branch.config.max_position_embeddings
    state["text_branch.embeddings.position_ids"] = torch.arange(max_positions).expand((1, -1))
    path = directory / "music_tiny_epoch_15.pt"
    torch.save({"epoch": 15, "state_dict": {"module." + k: v for k, v in state.items()}}, path)
    sidecar = sidecar or {
        "amodel": "HTSAT-tiny",
        "tmodel": "roberta",
        "enable_fusion": False,
        "text_model_dir": "text",  # relative: resolved against the sidecar's folder
        "device": "cpu",
    }
    laion_adapter.sidecar_path(path).write_text(json.dumps(sidecar))
    return path


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    directory = tmp_path_factory.mktemp("laion")
    text_dir = write_text_model_dir(directory / "text")
    reference = build_reference_module(text_dir)
    path = write_test_checkpoint(directory, reference.model)
    return {"path": path, "text_dir": text_dir, "reference": reference}


@pytest.fixture(scope="module")
def encoder(written):
    return load_encoder("laion-clap", written["path"])


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    """Two consecutive 10-s windows of a real recording at 48 kHz."""
    import librosa

    require_real_audio(REAL_OGG)
    audio, _ = librosa.load(REAL_OGG, sr=48_000, mono=True, offset=30.0, duration=20.0)
    return audio[: 2 * 480_000].reshape(2, 480_000).astype(np.float32)


def link_checkpoint(written, directory: Path, sidecar: dict | None) -> Path:
    """The same checkpoint under another name, with its own (or no) sidecar."""
    directory.mkdir(exist_ok=True)
    path = directory / "linked.pt"
    os.symlink(written["path"], path)
    if sidecar is not None:
        laion_adapter.sidecar_path(path).write_text(json.dumps(sidecar))
    return path


def test_protocol_and_identity(encoder, written):
    assert isinstance(encoder, AudioTextEncoder)
    assert encoder.name == "laion-clap"
    assert encoder.sample_rate == 48_000
    assert encoder.window_seconds == 10.0
    sha = hashlib.sha256(written["path"].read_bytes()).hexdigest()
    assert encoder.version == sha[:12]
    assert encoder.config.text_model_dir == written["text_dir"]
    # the offline RoBERTa stand-in was only in place while the model was built
    import laion_clap.clap_module.model as clap_model
    from transformers import RobertaModel

    assert clap_model.RobertaModel is RobertaModel


def test_loaded_weights_are_the_saved_ones(encoder, written):
    saved = written["reference"].model.state_dict()
    loaded = encoder.model.state_dict()
    assert set(loaded) == set(saved)
    for key in saved:
        assert np.array_equal(loaded[key].numpy(), saved[key].numpy()), key
    assert not encoder.model.training


def test_embed_audio_matches_laion_clap(encoder, written, windows):
    vectors = encoder.embed_audio(windows)
    assert vectors.shape == (2, 512) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs(vectors[0] - vectors[1]).max() > 1e-3  # different audio, different vectors
    expected = written["reference"].get_audio_embedding_from_data(windows)
    assert np.allclose(vectors, expected, atol=1e-5)
    # a short window is repeat-padded, as laion does; a longer one is cut deterministically
    assert encoder.embed_audio(windows[:1, :96_000]).shape == (1, 512)
    longer = np.concatenate([windows[0], windows[1][:48_000]])[None]
    assert np.allclose(encoder.embed_audio(longer), vectors[:1], atol=1e-5)


def test_embed_texts_matches_laion_clap(encoder, written):
    vectors = encoder.embed_texts(TEXTS)
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs(vectors[0] - vectors[1]).max() > 1e-3
    expected = written["reference"].get_text_embedding(TEXTS)
    assert np.allclose(vectors, expected, atol=1e-5)
    assert encoder.embed_texts([]).shape == (0, 512)


def test_bad_inputs_are_encoder_errors(encoder, windows):
    with pytest.raises(EncoderError, match="shape"):
        encoder.embed_audio(windows[0])
    bad = windows[:1].copy()
    bad[0, 10] = np.nan
    with pytest.raises(EncoderError, match="finite"):
        encoder.embed_audio(bad)
    with pytest.raises(EncoderError, match="sequence"):
        encoder.embed_texts("calm piano")


def test_checkpoint_with_missing_and_extra_keys(written, tmp_path):
    import torch

    checkpoint = torch.load(written["path"], map_location="cpu", weights_only=False)
    state = checkpoint["state_dict"]
    del state["module.audio_projection.0.weight"]
    state["module.text_branch.extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pt"
    torch.save(checkpoint, path)
    laion_adapter.sidecar_path(path).write_text(
        json.dumps({"amodel": "HTSAT-tiny", "text_model_dir": str(written["text_dir"])})
    )
    with pytest.raises(EncoderError) as error:
        load_encoder("laion-clap", path)
    message = str(error.value)
    assert "1 missing keys: audio_projection.0.weight" in message
    assert "1 unexpected keys: text_branch.extra.weight" in message


def test_not_a_checkpoint(written, tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    laion_adapter.sidecar_path(path).write_text(
        json.dumps({"amodel": "HTSAT-tiny", "text_model_dir": str(written["text_dir"])})
    )
    with pytest.raises(EncoderError, match="cannot read LAION-CLAP checkpoint"):
        load_encoder("laion-clap", path)


def test_text_model_dir_must_exist_and_be_complete(written, tmp_path):
    path = link_checkpoint(written, tmp_path / "a", {"text_model_dir": str(tmp_path / "nowhere")})
    with pytest.raises(EncoderError, match="is not a directory"):
        load_encoder("laion-clap", path)

    config_only = tmp_path / "config_only"
    config_only.mkdir()
    (config_only / "config.json").write_bytes((written["text_dir"] / "config.json").read_bytes())
    path = link_checkpoint(written, tmp_path / "b", {"text_model_dir": str(config_only)})
    with pytest.raises(EncoderError, match="lacks tokenizer files"):
        load_encoder("laion-clap", path)


def test_config_from_environment_without_sidecar(written, tmp_path, monkeypatch):
    path = link_checkpoint(written, tmp_path, None)
    monkeypatch.delenv(laion_adapter.ENV_TEXT_MODEL_DIR, raising=False)
    with pytest.raises(EncoderError, match="LAION_CLAP_TEXT_MODEL_DIR"):
        load_encoder("laion-clap", path)

    monkeypatch.setenv(laion_adapter.ENV_TEXT_MODEL_DIR, str(written["text_dir"]))
    monkeypatch.delenv(laion_adapter.ENV_AMODEL, raising=False)
    config = laion_adapter.config_for_checkpoint(path)
    assert config.amodel == "HTSAT-base" and config.text_model_dir == written["text_dir"]
    monkeypatch.setenv(laion_adapter.ENV_AMODEL, "HTSAT-tiny")
    assert laion_adapter.config_for_checkpoint(path).amodel == "HTSAT-tiny"


def test_sidecar_is_validated(written, tmp_path):
    path = link_checkpoint(
        written, tmp_path, {"text_model_dir": str(written["text_dir"]), "amodle": "HTSAT-tiny"}
    )
    with pytest.raises(EncoderError, match="unknown LAION-CLAP config keys \\['amodle'\\]"):
        load_encoder("laion-clap", path)
    for bad in ({"tmodel": "bert"}, {"device": "tpu"}, {"enable_fusion": "yes"}):
        with pytest.raises(EncoderError):
            laion_adapter.LaionClapConfig.from_mapping({"text_model_dir": "x", **bad})
