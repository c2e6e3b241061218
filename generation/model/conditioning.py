"""What the DiT is conditioned on, as one batch of tensors.

References are CLAP embeddings (unit vectors) with a role and a weight; an optional text-prompt
embedding from the same CLAP text tower; and timing (stable-audio-tools `seconds_start`,
`seconds_total`). Absent references and an absent text are masked, never zero-filled tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from generation.model.config import GeneratorError


@dataclass
class Conditioning:
    embeddings: torch.Tensor  # (B, R, C) reference CLAP embeddings
    roles: torch.Tensor  # (B, R) long, index into the model's roles
    weights: torch.Tensor  # (B, R) float
    ref_mask: torch.Tensor  # (B, R) bool, True = reference present
    text: torch.Tensor  # (B, C) text-prompt embedding
    text_mask: torch.Tensor  # (B,) bool, True = text present
    seconds_start: torch.Tensor  # (B,) offset of the audio in its source, seconds
    seconds_total: torch.Tensor  # (B,) seconds of real (unpadded) audio

    @property
    def batch_size(self) -> int:
        return self.embeddings.shape[0]

    def to_tensors(self) -> tuple[torch.Tensor, ...]:
        """The fields in order, e.g. to pass through `torch.func.vmap`."""
        return tuple(getattr(self, f.name) for f in fields(self))

    @classmethod
    def from_tensors(cls, tensors: Sequence[torch.Tensor]) -> Conditioning:
        return cls(*tensors)

    def _map(self, fn) -> Conditioning:
        return Conditioning.from_tensors([fn(t) for t in self.to_tensors()])

    def to(self, device: str | torch.device) -> Conditioning:
        return self._map(lambda t: t.to(device))

    def repeat_interleave(self, repeats: int) -> Conditioning:
        """Each sample `repeats` times in a row: (B, ...) -> (B * repeats, ...)."""
        return self._map(lambda t: t.repeat_interleave(repeats, dim=0))

    def index(self, rows: torch.Tensor | slice) -> Conditioning:
        return self._map(lambda t: t[rows])

    def drop(self, dropped: torch.Tensor) -> Conditioning:
        """Mask all references and the text of the samples where `dropped` (B,) is True
        (classifier-free guidance dropout); timing is kept."""
        keep = ~dropped.to(device=self.ref_mask.device, dtype=torch.bool)
        return Conditioning(
            embeddings=self.embeddings,
            roles=self.roles,
            weights=self.weights,
            ref_mask=self.ref_mask & keep[:, None],
            text=self.text,
            text_mask=self.text_mask & keep,
            seconds_start=self.seconds_start,
            seconds_total=self.seconds_total,
        )

    def unconditional(self) -> Conditioning:
        """The same batch with every reference and text masked (the CFG unconditional branch)."""
        return self.drop(torch.ones(self.batch_size, dtype=torch.bool, device=self.ref_mask.device))

    @classmethod
    def build(
        cls,
        embeddings: np.ndarray | None,
        roles: Sequence[int],
        weights: Sequence[float],
        *,
        text: np.ndarray | None = None,
        seconds_start: float = 0.0,
        seconds_total: float,
        cond_dim: int = 512,
    ) -> Conditioning:
        """One sample (B = 1) from numpy: embeddings (R, cond_dim), R may be 0. Embeddings are
        L2-normalised (CLAP space); a zero vector is refused."""
        count = len(roles)
        if embeddings is None or count == 0:
            refs = np.zeros((0, cond_dim), dtype=np.float32)
        else:
            refs = np.asarray(embeddings, dtype=np.float32).reshape(count, -1)
        if refs.shape[1] != cond_dim or len(weights) != count:
            raise GeneratorError(f"expected {count} embeddings of {cond_dim} values with weights")
        refs = _unit(refs)
        text_vec = np.zeros(cond_dim, dtype=np.float32)
        if text is not None:
            text_vec = _unit(np.asarray(text, dtype=np.float32).reshape(1, cond_dim))[0]
        return cls(
            embeddings=torch.from_numpy(refs)[None],  # (1, R, C)
            roles=torch.tensor([list(roles)], dtype=torch.long).reshape(1, count),
            weights=torch.tensor([list(weights)], dtype=torch.float32).reshape(1, count),
            ref_mask=torch.ones(1, count, dtype=torch.bool),
            text=torch.from_numpy(text_vec)[None],  # (1, C)
            text_mask=torch.tensor([text is not None]),
            seconds_start=torch.tensor([float(seconds_start)]),
            seconds_total=torch.tensor([float(seconds_total)]),
        )


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not np.all(np.isfinite(vectors)) or np.any(norms < 1e-8):
        raise GeneratorError("conditioning embeddings must be finite and non-zero")
    return (vectors / norms).astype(np.float32)


def collate(items: Sequence[Conditioning]) -> Conditioning:
    """Concatenate batches; reference slots are padded (masked) to the longest R."""
    if not items:
        raise GeneratorError("nothing to collate")
    refs = max(c.embeddings.shape[1] for c in items)

    def pad(tensor: torch.Tensor, value) -> torch.Tensor:
        missing = refs - tensor.shape[1]
        if missing == 0:
            return tensor
        shape = (tensor.shape[0], missing, *tensor.shape[2:])
        return torch.cat([tensor, tensor.new_full(shape, value)], dim=1)

    return Conditioning(
        embeddings=torch.cat([pad(c.embeddings, 0.0) for c in items]),
        roles=torch.cat([pad(c.roles, 0) for c in items]),
        weights=torch.cat([pad(c.weights, 0.0) for c in items]),
        ref_mask=torch.cat([pad(c.ref_mask, False) for c in items]),
        text=torch.cat([c.text for c in items]),
        text_mask=torch.cat([c.text_mask for c in items]),
        seconds_start=torch.cat([c.seconds_start for c in items]),
        seconds_total=torch.cat([c.seconds_total for c in items]),
    )
