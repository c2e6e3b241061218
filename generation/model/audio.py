"""Log-mel front end and its inverse (mel pseudo-inverse + fast Griffin-Lim), in plain torch.

Both directions use the same centred Hann STFT (`torch.stft` / `torch.istft`), so a log-mel
computed here and rendered back is consistent frame by frame. The mel filterbank comes from
`librosa.filters.mel` (Slaney scale and norm), imported when a front end is built.
"""

from __future__ import annotations

import numpy as np
import torch

from generation.model.config import GeneratorError, MelConfig


class MelFrontend:
    """audio (samples,) <-> log-mel (n_mels, frames) for one `MelConfig`."""

    def __init__(self, config: MelConfig) -> None:
        import librosa  # slow to import: only when a front end is built

        self.config = config
        basis = librosa.filters.mel(
            sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
            fmin=config.fmin, fmax=config.fmax,
        )  # fmt: skip
        self.mel_basis = torch.from_numpy(basis.astype(np.float32))  # (n_mels, n_freq)
        self.mel_pinv = torch.linalg.pinv(self.mel_basis)  # (n_freq, n_mels)
        self.window = torch.hann_window(config.n_fft)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    # -- analysis --------------------------------------------------------------------------

    def _stft(self, audio: torch.Tensor) -> torch.Tensor:
        c = self.config
        return torch.stft(
            audio, n_fft=c.n_fft, hop_length=c.hop_length, window=self.window.to(audio.device),
            center=True, pad_mode="constant", return_complex=True,
        )  # fmt: skip

    def _istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        c = self.config
        return torch.istft(
            spec, n_fft=c.n_fft, hop_length=c.hop_length, window=self.window.to(spec.device),
            center=True, length=length,
        )  # fmt: skip

    def logmel_tensor(self, audio: torch.Tensor) -> torch.Tensor:
        """(samples,) or (B, samples) float32 -> (n_mels, frames) or (B, n_mels, frames)."""
        magnitude = self._stft(audio).abs()  # (..., n_freq, frames)
        mel = self.mel_basis.to(audio.device) @ magnitude  # (..., n_mels, frames)
        return torch.log(mel.clamp_min(self.config.log_floor))

    def logmel(self, audio: np.ndarray) -> np.ndarray:
        """Mono float32 audio at `sample_rate` -> (n_mels, frames) natural-log mel magnitudes."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1 or audio.size == 0:
            raise GeneratorError(f"expected non-empty mono audio (samples,), got {audio.shape}")
        if not np.all(np.isfinite(audio)):
            raise GeneratorError("audio contains NaN or infinite samples")
        with torch.no_grad():
            return self.logmel_tensor(torch.from_numpy(audio)).numpy()

    # -- synthesis -------------------------------------------------------------------------

    def magnitude_of(self, logmel: torch.Tensor) -> torch.Tensor:
        """(n_mels, frames) log-mel -> (n_freq, frames) non-negative linear magnitudes.

        Starts from the clamped pseudo-inverse, then a few multiplicative (NMF-style) updates
        of min ||B S - mel||^2 over S >= 0 pull it back onto the filterbank's range.
        """
        basis = self.mel_basis.to(logmel.device)
        mel = logmel.exp()  # (n_mels, frames)
        spec = (self.mel_pinv.to(logmel.device) @ mel).clamp_min(0)  # (n_freq, frames)
        spec = spec + 1e-3 * self.config.log_floor  # multiplicative updates cannot leave 0
        numerator = basis.T @ mel
        for _ in range(self.config.inverse_iters):
            spec = spec * numerator / (basis.T @ (basis @ spec)).clamp_min(1e-12)
        return spec

    def griffin_lim(
        self,
        magnitude: torch.Tensor,
        length: int,
        *,
        seed: int = 0,
        init_audio: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(n_freq, frames) magnitudes -> (length,) audio. Phase starts random (seeded), or from
        `init_audio`'s STFT (used by inpainting so the kept parts keep their phase)."""
        c = self.config
        if init_audio is not None:
            angles = torch.polar(torch.ones_like(magnitude), self._stft(init_audio).angle())
        else:
            generator = torch.Generator().manual_seed(seed)
            phase = 2 * torch.pi * torch.rand(magnitude.shape, generator=generator)
            angles = torch.polar(torch.ones_like(magnitude), phase.to(magnitude.device))
        previous = torch.zeros_like(angles)
        factor = c.griffin_lim_momentum / (1 + c.griffin_lim_momentum)
        for _ in range(c.griffin_lim_iters):
            rebuilt = self._stft(self._istft(magnitude * angles, length))
            angles = rebuilt - factor * previous
            angles = angles / angles.abs().clamp_min(1e-16)
            previous = rebuilt
        return self._istft(magnitude * angles, length)

    def to_audio(
        self,
        logmel: np.ndarray | torch.Tensor,
        length: int | None = None,
        *,
        seed: int = 0,
        init_audio: np.ndarray | None = None,
        device: str | torch.device = "cpu",
    ) -> np.ndarray:
        """(n_mels, frames) log-mel -> mono float32 audio (not normalised).

        `length` defaults to (frames - 1) * hop_length samples.
        """
        mel = torch.as_tensor(np.asarray(logmel, dtype=np.float32), device=device)
        if mel.ndim != 2 or mel.shape[0] != self.config.n_mels:
            raise GeneratorError(f"expected ({self.config.n_mels}, T) log-mel, got {mel.shape}")
        frames = mel.shape[1]
        if length is None:
            length = (frames - 1) * self.config.hop_length
        if self.config.frames_for_samples(length) != frames:
            raise GeneratorError(f"{length} samples do not give {frames} frames")
        init = None
        if init_audio is not None:
            init = torch.as_tensor(np.asarray(init_audio, dtype=np.float32), device=device)
            if init.shape != (length,):
                raise GeneratorError(f"init_audio must have {length} samples, got {init.shape}")
        with torch.no_grad():
            magnitude = self.magnitude_of(mel)
            audio = self.griffin_lim(magnitude, length, seed=seed, init_audio=init)
        return audio.cpu().numpy().astype(np.float32)
