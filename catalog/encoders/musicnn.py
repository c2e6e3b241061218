"""PyTorch port of the pretrained musicnn taggers (Pons & Serra, `musicnn` 0.1.0, ISC licence).

musicnn gives well-tested music embeddings and 50 tags per 3-s patch, but it ships TF1
checkpoints and pins TensorFlow 1.x. We keep its pip package only as a data source: the
weights are read from its checkpoint files (`tf_checkpoint`), its labels and signal settings
from its `configuration.py` source (parsed, never imported: its modules import TensorFlow),
and the networks of its `models.py` are rebuilt here layer by layer, in TF's layouts and
conventions (conv -> ReLU -> batch norm, eps 1e-3; 'same' padding puts the odd pad after).

One deliberate difference: musicnn's `extractor()` casts the mel spectrogram to float16 before
`log10(10000 * x + 1)`; under NumPy 2 the product stays float16 and overflows to inf wherever the
mel power exceeds 6.55 (35-59 % of the frames of the game music we tried). We use float32.
On identical log-mel patches, all four networks match musicnn's own TF graph to ~3e-5 (logits).
Audio shorter than one patch raises `EncoderError` rather than being padded silently.
Plain module: no Django imports.
"""

from __future__ import annotations

import ast
import contextlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from catalog.encoders import EncoderError
from catalog.encoders.audio_only import installed_package_dir
from catalog.encoders.tf_checkpoint import read_checkpoint

# musicnn/configuration.py (checked against the installed package when labels are read)
SAMPLE_RATE = 16_000
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
PATCH_FRAMES = 187  # extractor(): librosa.time_to_frames(3 s) + 1
PATCH_SECONDS = PATCH_FRAMES * HOP_LENGTH / SAMPLE_RATE  # 2.992 s between patch starts
MIN_SAMPLES = (PATCH_FRAMES - 1) * HOP_LENGTH  # centred STFT: frames = 1 + samples // hop
TF_BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default epsilon
# Adam slots and accumulators in the checkpoints: saved by training, not part of the network.
_OPTIMIZER_STATE = re.compile(r"(/Adam(_1)?|^beta[12]_power)$")


@dataclass(frozen=True)
class MusicnnConfig:
    """One pretrained network of the musicnn package (its `models.define_model` arguments)."""

    name: str
    architecture: str  # "musicnn" or "vgg"
    dataset: str  # "MTT" (MagnaTagATune) or "MSD" (Million Song Dataset): which labels
    num_classes: int = 50
    midend_filters: int = 64
    backend_units: int = 200
    vgg_filters: int = 128


MODELS = {
    "MTT_musicnn": MusicnnConfig("MTT_musicnn", "musicnn", "MTT"),
    "MSD_musicnn": MusicnnConfig("MSD_musicnn", "musicnn", "MSD"),
    "MTT_vgg": MusicnnConfig("MTT_vgg", "vgg", "MTT"),
    "MSD_vgg": MusicnnConfig("MSD_vgg", "vgg", "MSD"),
}
LAYERS = {"musicnn": ("penultimate", "max_pool", "mean_pool"), "vgg": ("penultimate",)}


def log_mel(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float audio in [-1, 1] -> (frames, 96) float32 log-mel, as musicnn's `batch_data`."""
    import librosa

    audio = _check_audio(audio, sample_rate)
    if sample_rate != SAMPLE_RATE:
        audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=SAMPLE_RATE)
    mel = librosa.feature.melspectrogram(
        y=audio,
        sr=SAMPLE_RATE,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        n_mels=N_MELS,
        pad_mode="reflect",  # librosa < 0.10's default, which the models were trained with
    ).T
    return np.log10(10_000 * mel.astype(np.float32) + 1)


def patches(spectrogram: np.ndarray) -> np.ndarray:
    """(frames, 96) -> (n, 187, 96) consecutive non-overlapping patches; the tail is dropped."""
    n = spectrogram.shape[0] // PATCH_FRAMES
    if n == 0:
        raise EncoderError(
            f"audio too short: musicnn needs at least one {PATCH_SECONDS:.3f}-s patch "
            f"({PATCH_FRAMES} frames, {MIN_SAMPLES} samples at {SAMPLE_RATE} Hz), "
            f"got {spectrogram.shape[0]} frames; pad or loop it first"
        )
    return spectrogram[: n * PATCH_FRAMES].reshape(n, PATCH_FRAMES, N_MELS)


def _check_audio(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise EncoderError(f"expected mono 1-D audio, got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise EncoderError(f"expected float audio in [-1, 1], got dtype {audio.dtype}")
    if not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise EncoderError(f"sample rate must be a positive integer, got {sample_rate!r}")
    if audio.size < MIN_SAMPLES * sample_rate / SAMPLE_RATE:
        raise EncoderError(
            f"audio too short: {audio.size / sample_rate:.3f} s; musicnn needs at least one "
            f"{PATCH_SECONDS:.3f}-s patch ({MIN_SAMPLES} samples at {SAMPLE_RATE} Hz)"
        )
    if not np.isfinite(audio).all():
        raise EncoderError("audio contains NaN or infinite samples")
    return audio.astype(np.float32, copy=False)


def _tf_same_pad(kernel: int) -> tuple[int, int]:
    """TF 'same' padding at stride 1: the odd sample of padding goes after, not before."""
    total = kernel - 1
    return total // 2, total - total // 2


def _tf_names(base: str, modules: list[nn.Module]) -> dict[str, nn.Module]:
    """tf.layers' default names in creation order: base, base_1, base_2, ..."""
    return {base if i == 0 else f"{base}_{i}": m for i, m in enumerate(modules)}


class _FreqPooledConv(nn.Module):
    """musicnn's timbral_block / tempo_block: conv2d + ReLU, batch norm, max over frequency."""

    def __init__(self, filters: int, kernel: tuple[int, int], time_pad: tuple[int, int]):
        super().__init__()
        self.time_pad = time_pad
        self.conv = nn.Conv2d(1, filters, kernel)
        self.bn = nn.BatchNorm2d(filters, eps=TF_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, *self.time_pad))  # (B, 1, T + kt - 1, F), zeros after the input BN
        x = self.bn(F.relu(self.conv(x)))  # (B, C, T, F - kf + 1)
        return x.amax(dim=3)  # (B, C, T)


class _MidendConv(nn.Module):
    """A mid-end layer: TF's conv2d with kernel [7, channels] is a 1-D conv over time."""

    def __init__(self, in_channels: int, filters: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, filters, 7)
        self.bn = nn.BatchNorm1d(filters, eps=TF_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(F.pad(x, (3, 3)))))  # (B, C, T) -> (B, filters, T)


class Musicnn(nn.Module):
    """models.build_musicnn: timbral + temporal front end, dense mid end, pooled back end."""

    def __init__(self, config: MusicnnConfig):
        super().__init__()
        timbral, temporal = int(1.6 * 128), int(1.6 * 32)  # 204 and 51 filters
        self.input_bn = nn.BatchNorm2d(1, eps=TF_BN_EPS)
        self.frontend = nn.ModuleList(
            [_FreqPooledConv(timbral, (7, int(f * N_MELS)), (3, 3)) for f in (0.4, 0.7)]
            + [_FreqPooledConv(temporal, (k, 1), _tf_same_pad(k)) for k in (128, 64, 32)]
        )
        front = 2 * timbral + 3 * temporal  # 561
        mid = config.midend_filters
        self.midend = nn.ModuleList(
            [_MidendConv(front, mid), _MidendConv(mid, mid), _MidendConv(mid, mid)]
        )
        pooled = front + 3 * mid  # 753
        self.pool_bn = nn.BatchNorm1d(2 * pooled, eps=TF_BN_EPS)
        self.dense = nn.Linear(2 * pooled, config.backend_units)
        self.dense_bn = nn.BatchNorm1d(config.backend_units, eps=TF_BN_EPS)
        self.output = nn.Linear(config.backend_units, config.num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.input_bn(x.unsqueeze(1))  # (B, T, 96) -> (B, 1, T, 96)
        front = torch.cat([block(x) for block in self.frontend], dim=1)  # (B, 561, T)
        mid1 = self.midend[0](front)  # (B, 64, T)
        mid2 = self.midend[1](mid1) + mid1
        mid3 = self.midend[2](mid2) + mid2
        features = torch.cat([front, mid1, mid2, mid3], dim=1)  # (B, 753, T)
        max_pool, mean_pool = features.amax(dim=2), features.mean(dim=2)  # (B, 753) each
        # TF concatenates (B, 753, 1) maxima and means on the last axis, then flattens:
        # the two interleave as max_0, mean_0, max_1, mean_1, ...
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)  # (B, 1506)
        penultimate = self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))  # (B, 200)
        return {
            "logits": self.output(penultimate),  # (B, 50)
            "penultimate": penultimate,
            "max_pool": max_pool,
            "mean_pool": mean_pool,
        }

    def tf_layers(self) -> dict[str, nn.Module]:
        """TF layer name -> module, following the order models.py creates the layers in."""
        bns = [self.input_bn, *(b.bn for b in self.frontend), *(m.bn for m in self.midend)]
        convs = [*(b.conv for b in self.frontend), *(m.conv for m in self.midend)]
        return {
            **_tf_names("batch_normalization", [*bns, self.pool_bn, self.dense_bn]),
            **_tf_names("conv2d", convs),
            **_tf_names("dense", [self.dense, self.output]),
        }


class Vgg(nn.Module):
    """models.vgg: five 3x3 conv / batch norm / max-pool stages on a 187 x 96 patch."""

    POOLS = (  # (kernel, stride) of each max-pooling stage
        ((4, 1), (2, 2)),
        ((2, 2), (2, 2)),
        ((2, 2), (2, 2)),
        ((2, 2), (2, 2)),
        ((4, 4), (4, 4)),
    )

    def __init__(self, config: MusicnnConfig):
        super().__init__()
        width = config.vgg_filters
        self.input_bn = nn.BatchNorm2d(1, eps=TF_BN_EPS)
        self.convs = nn.ModuleList(
            [nn.Conv2d(1 if i == 0 else width, width, 3, padding=1) for i in range(5)]
        )  # 3x3 'same' padding is symmetric
        self.bns = nn.ModuleList([nn.BatchNorm2d(width, eps=TF_BN_EPS) for _ in range(5)])
        self.output = nn.Linear(2 * 1 * width, config.num_classes)  # pool5 is 2 x 1 x 128

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.input_bn(x.unsqueeze(1))  # (B, 1, 187, 96)
        for conv, bn, (kernel, stride) in zip(self.convs, self.bns, self.POOLS, strict=True):
            x = F.max_pool2d(bn(F.relu(conv(x))), kernel, stride)  # 'valid' pooling
        # x: (B, 128, 2, 1); TF flattens channels-last
        penultimate = x.permute(0, 2, 3, 1).flatten(1)  # (B, 256)
        return {"logits": self.output(penultimate), "penultimate": penultimate}

    def tf_layers(self) -> dict[str, nn.Module]:
        return {
            **_tf_names("batch_normalization", [self.input_bn, *self.bns]),
            **{f"{i + 1}CNN": conv for i, conv in enumerate(self.convs)},
            "dense": self.output,
        }


def _tf_parameters(layers: dict[str, nn.Module]) -> dict[str, tuple[torch.Tensor, tuple, str]]:
    """TF variable name -> (torch tensor to fill, TF shape it must have, layout kind)."""
    params = {}
    for layer, module in layers.items():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            for tf_name, tensor in (
                ("gamma", module.weight),
                ("beta", module.bias),
                ("moving_mean", module.running_mean),
                ("moving_variance", module.running_var),
            ):
                params[f"{layer}/{tf_name}"] = (tensor, tuple(tensor.shape), "same")
            continue
        out, inp, *kernel = module.weight.shape
        if isinstance(module, nn.Conv2d):  # TF (h, w, in, out)
            params[f"{layer}/kernel"] = (module.weight, (*kernel, inp, out), "conv2d")
        elif isinstance(module, nn.Conv1d):  # TF conv2d over (T, C, 1): (k, in, 1, out)
            params[f"{layer}/kernel"] = (module.weight, (kernel[0], inp, 1, out), "conv1d")
        else:  # nn.Linear; TF dense kernel is (in, out)
            params[f"{layer}/kernel"] = (module.weight, (inp, out), "dense")
        params[f"{layer}/bias"] = (module.bias, (out,), "same")
    return params


_TO_TORCH = {
    "same": lambda v: v,
    "conv2d": lambda v: v.transpose(3, 2, 0, 1),
    "conv1d": lambda v: v[:, :, 0, :].transpose(2, 1, 0),
    "dense": lambda v: v.T,
}


def load_tf_weights(network: nn.Module, variables: dict[str, np.ndarray]) -> None:
    """Fill `network` from TF variables by name; every one must map, with the right shape."""
    params = _tf_parameters(network.tf_layers())
    missing = sorted(set(params) - set(variables))
    unused = sorted(k for k in variables if k not in params and not _OPTIMIZER_STATE.search(k))
    wrong = sorted(
        f"{k}: {variables[k].shape} != {shape}"
        for k, (_, shape, _) in params.items()
        if k in variables and variables[k].shape != shape
    )
    if missing or unused or wrong:
        raise EncoderError(
            f"checkpoint does not fit {type(network).__name__}: missing {missing}, "
            f"unused {unused}, wrong shapes {wrong}"
        )
    with torch.no_grad():
        for name, (tensor, _, kind) in params.items():
            value = np.ascontiguousarray(_TO_TORCH[kind](variables[name]), dtype=np.float32)
            tensor.copy_(torch.from_numpy(value))


def musicnn_package_dir() -> Path:
    """Where the installed musicnn package keeps its files (found, not imported)."""
    return installed_package_dir("musicnn", "pip install --no-deps musicnn==0.1.0")


def read_configuration(package_dir: Path) -> dict[str, object]:
    """The constants of musicnn/configuration.py, parsed from its source."""
    path = package_dir / "configuration.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError) as exc:
        raise EncoderError(f"cannot read musicnn configuration {path}: {exc}") from exc
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                with contextlib.suppress(ValueError, TypeError):  # not a literal: not ours
                    values[target.id] = ast.literal_eval(node.value)
    ours = {"SR": SAMPLE_RATE, "FFT_HOP": HOP_LENGTH, "FFT_SIZE": N_FFT, "N_MELS": N_MELS}
    differ = {k: values.get(k) for k, v in ours.items() if values.get(k) != v}
    if differ:
        raise EncoderError(f"musicnn configuration {path} differs from this port: {differ}")
    return values


_NETWORKS: dict[tuple[str, str, str], nn.Module] = {}
_NETWORKS_LOCK = threading.Lock()


def load_network(config: MusicnnConfig, package_dir: Path, device: str = "cpu") -> nn.Module:
    """The network with its pretrained weights, in inference mode; built once per process."""
    key = (config.name, str(package_dir), str(device))
    with _NETWORKS_LOCK:
        if key not in _NETWORKS:
            network = (Musicnn if config.architecture == "musicnn" else Vgg)(config)
            load_tf_weights(network, read_checkpoint(package_dir / config.name))
            _NETWORKS[key] = network.eval().requires_grad_(False).to(device)
        return _NETWORKS[key]


class MusicnnEmbedder:
    """Embeddings and tags of musicnn's pretrained networks, one row per 2.992-s patch.

    Patch i covers seconds [i, i + 1) * patch_seconds of the audio (frames are centred, as in
    librosa); the tail shorter than a patch is dropped, and audio shorter than one patch raises
    `EncoderError` (musicnn trained on repeat-padded short clips: loop them first if needed).
    """

    sample_rate = SAMPLE_RATE  # Hz the networks hear; `embed` resamples any other rate
    patch_seconds = PATCH_SECONDS

    def __init__(
        self,
        model: str = "MTT_musicnn",
        *,
        package_dir: str | Path | None = None,
        device: str = "cpu",
        batch_size: int = 16,
    ):
        if model not in MODELS:
            raise EncoderError(f"unknown musicnn model '{model}'; known: {', '.join(MODELS)}")
        self.config = MODELS[model]
        self.name = model
        self.layers = LAYERS[self.config.architecture]
        self.device = device
        self.batch_size = batch_size
        self._package_dir = Path(package_dir) if package_dir else None
        self._labels: tuple[str, ...] | None = None

    @property
    def package_dir(self) -> Path:
        if self._package_dir is None:
            self._package_dir = musicnn_package_dir()
        return self._package_dir

    @property
    def labels(self) -> tuple[str, ...]:
        """The tag names, in output order (musicnn's MTT_LABELS or MSD_LABELS)."""
        if self._labels is None:
            values = read_configuration(self.package_dir)
            labels = tuple(values.get(f"{self.config.dataset}_LABELS", ()))
            if len(labels) != self.config.num_classes:
                raise EncoderError(f"musicnn configuration has no {self.config.dataset} labels")
            self._labels = labels
        return self._labels

    def embed(self, audio: np.ndarray, sample_rate: int, layer: str = "penultimate") -> np.ndarray:
        """Mono float audio -> (n_patches, d) float32: penultimate 200-d, max/mean_pool 753-d
        (vgg models: penultimate = flattened pool5, 256-d)."""
        if layer not in self.layers:
            raise EncoderError(f"unknown layer '{layer}' for {self.name}; known: {self.layers}")
        return self._run(audio, sample_rate, layer)

    def taggram(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """(n_patches, n_tags) tag probabilities, columns in `labels` order."""
        return self._run(audio, sample_rate, "tags")

    def tags(
        self, audio: np.ndarray, sample_rate: int, top: int | None = None
    ) -> list[tuple[str, float]]:
        """(tag, probability averaged over patches), most probable first."""
        mean = self.taggram(audio, sample_rate).mean(axis=0)
        order = np.argsort(-mean, kind="stable")[:top]
        return [(self.labels[i], float(mean[i])) for i in order]

    def _run(self, audio: np.ndarray, sample_rate: int, output: str) -> np.ndarray:
        batch = patches(log_mel(audio, sample_rate))  # (n, 187, 96)
        network = load_network(self.config, self.package_dir, self.device)
        rows = []
        with torch.inference_mode():
            for start in range(0, len(batch), self.batch_size):
                x = torch.from_numpy(batch[start : start + self.batch_size]).to(self.device)
                out = network(x)
                y = torch.sigmoid(out["logits"]) if output == "tags" else out[output]
                rows.append(y.float().cpu().numpy())
        result = np.concatenate(rows)
        if not np.isfinite(result).all():
            raise EncoderError(f"{self.name} produced non-finite {output}")
        return result
