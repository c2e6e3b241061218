"""Study helpers for seed 000 section 3 (plain torch/numpy, no Django): the non-counterfactual
baselines the unlearning scores are compared with (3.3), and what the self-influence grid
(3.2) needs besides the TDA stages.

- `dit_features` probes the platform DiT at fixed (t, noise) draws shared by every example
  (common random numbers, so two examples differ only by their content and conditioning):
  every block's token features, the final layer's features and the x0 residual.
- `activation_similarity`: LPIPS-like similarity from the DiT's own activations: per block,
  token features unit-normalised over channels, cosine of time-aligned tokens averaged over the
  tokens real in both examples (LPIPS's spatial average), then averaged over draws and blocks.
- `representer_scores`: representer points (RPS, Yeh et al. 2018, as seed 000 uses them):
  tau(z_hat, z_i) = alpha_i f(z_i)^T f(z_hat), f = last-layer features (the input of the DiT's
  output projection, pooled over real tokens and draws), alpha_i = -(Phi(z_i) - z_i) / (lambda n)
  with Phi the pre-activation output (this DiT's x0 prediction) and the MSE objective; the
  components of alpha_i are averaged (the "average of signed sum" of seed 000).
- `max_window_similarity`: all-against-all windowed similarity (max cosine over window pairs);
  `frechet_distance_in_span`: the FD of few samples in a high-dimensional space, cheaply.
- `correlation_matrix`, `normalised_views`: seed 000 Fig. 2 and Fig. 1.
- `kmeans_representatives`: diverse self-influence targets (seed 000 3.1: k-means on CLAP).
- `spec_from_conditioning`: a `GenerationSpec` that samples with an example's conditioning.

The probes need the platform DiT's structure: `.blocks` (modules returning (B, N, D) tokens),
`.patch_out` (the output projection), `.predict_x0(x_t, t, cond, frame_mask)` and
`.config.patch_frames`; examples and conditioning go through the `AttributionTarget`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from attribution.tda.errors import TDAConfigError
from attribution.tda.evaluate import frechet_distance
from attribution.tda.normalise import minmax, softmax_shares
from attribution.tda.target import AttributionTarget, Example, draws, example_to
from generation.model import Conditioning, GenerationSpec, ReferenceCondition
from generation.model.diffusion import alpha_sigma


@dataclass(frozen=True)
class ProbeConfig:
    """How the DiT is probed for the activation and representer baselines."""

    timesteps: int = 4  # stratified t draws, the same (t, noise) for every example
    seed: int = 0
    items_per_batch: int = 4
    rps_lambda: float = 1e-3  # lambda of RPS (scales every alpha alike: ranks do not change)

    def __post_init__(self) -> None:
        if not (isinstance(self.timesteps, int) and self.timesteps >= 1):
            raise TDAConfigError("timesteps must be an integer >= 1")
        if not (isinstance(self.items_per_batch, int) and self.items_per_batch >= 1):
            raise TDAConfigError("items_per_batch must be an integer >= 1")
        if not (0 < self.rps_lambda < float("inf")):
            raise TDAConfigError("rps_lambda must be a finite number > 0")


@dataclass
class DiTFeatures:
    """What one probe pass gives for a batch of B examples (on the CPU)."""

    layers: list[torch.Tensor]  # per block: (B, K, N, D) tokens, unit-normalised over D
    token_mask: torch.Tensor  # (B, N) bool, True = token holds a real frame
    last: torch.Tensor  # (B, D) final-layer features, mean over real tokens and draws
    residual: torch.Tensor  # (B,) mean of x0_hat - x0 over real frames, mels and draws

    @classmethod
    def cat(cls, parts: Sequence[DiTFeatures]) -> DiTFeatures:
        return cls(
            layers=[torch.cat([p.layers[i] for p in parts]) for i in range(len(parts[0].layers))],
            token_mask=torch.cat([p.token_mask for p in parts]),
            last=torch.cat([p.last for p in parts]),
            residual=torch.cat([p.residual for p in parts]),
        )


def _token_mask(frame_mask: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, T) frames -> (B, N) tokens holding any real frame (as the DiT patchifies)."""
    batch, frames = frame_mask.shape
    padded = F.pad(frame_mask, (0, (-frames) % patch), value=False)
    return padded.reshape(batch, -1, patch).any(dim=-1)


@torch.no_grad()
def dit_features(
    target: AttributionTarget, model: nn.Module, batch: Example, config: ProbeConfig
) -> DiTFeatures:
    """Probe `model` (prepared, on its device) with every example of `batch` noised by the same
    K draws; block outputs and the output projection's input are read by forward hooks."""
    device = next(model.parameters()).device
    k = config.timesteps
    size = batch.batch_size
    t, noise = draws(config.seed, "probe", 0, k, batch.x0.shape[1:])  # (K,), (K, M, T)
    batch = example_to(target, batch, device)
    frame_mask = (
        batch.mask
        if batch.mask is not None
        else torch.ones(size, batch.x0.shape[-1], dtype=torch.bool, device=device)
    )
    x0 = batch.x0.repeat_interleave(k, dim=0)  # (B * K, M, T)
    cond = target.cond_from_tensors(
        [c.repeat_interleave(k, dim=0) for c in target.cond_to_tensors(batch.cond)]
    )
    masks = frame_mask.repeat_interleave(k, dim=0)  # (B * K, T)
    times = t.to(device).repeat(size)  # (B * K,)
    eps = noise.to(device).repeat(size, 1, 1)  # (B * K, M, T)
    alpha, sigma = alpha_sigma(times.to(x0.dtype)[:, None, None])
    x_t = alpha * x0 + sigma * eps

    captured: dict[str, list[torch.Tensor]] = {"blocks": [], "last": []}
    handles = [
        block.register_forward_hook(lambda _m, _i, out: captured["blocks"].append(out))
        for block in model.blocks
    ]
    handles.append(
        model.patch_out.register_forward_pre_hook(lambda _m, inp: captured["last"].append(inp[0]))
    )
    try:
        x0_hat = model.predict_x0(x_t, times, cond, masks)  # (B * K, M, T)
    finally:
        for handle in handles:
            handle.remove()

    tokens = _token_mask(frame_mask, model.config.patch_frames)  # (B, N)
    layers = []
    for out in captured["blocks"]:  # each (B * K, N, D)
        unit = F.normalize(out.float(), dim=-1)
        layers.append(unit.reshape(size, k, *unit.shape[1:]).cpu())
    weight = tokens.repeat_interleave(k, dim=0).float()[..., None]  # (B * K, N, 1)
    last = (captured["last"][0].float() * weight).sum(1) / weight.sum(1).clamp_min(1.0)
    frames = masks.float()[:, None, :]  # (B * K, 1, T)
    error = ((x0_hat - x0).float() * frames).sum(dim=(1, 2)) / (
        frames.sum(dim=(1, 2)).clamp_min(1.0) * x0.shape[1]
    )  # (B * K,)
    return DiTFeatures(
        layers=layers,
        token_mask=tokens.cpu(),
        last=last.reshape(size, k, -1).mean(dim=1).cpu(),
        residual=error.reshape(size, k).mean(dim=1).cpu(),
    )


def activation_similarity(queries: DiTFeatures, items: DiTFeatures) -> np.ndarray:
    """(Q, B) LPIPS-like similarity: per block, mean cosine of time-aligned token features over
    the tokens real in both, averaged over draws and blocks (1 = identical activations)."""
    joint = (queries.token_mask[:, None, :] & items.token_mask[None, :, :]).float()  # (Q, B, N)
    count = joint.sum(-1).clamp_min(1.0)  # (Q, B)
    per_layer = []
    for q, x in zip(queries.layers, items.layers, strict=True):  # (Q, K, N, D), (B, K, N, D)
        cosine = torch.einsum("qknd,bknd->qbkn", q, x)  # (Q, B, K, N)
        per_layer.append(((cosine * joint[:, :, None, :]).sum(-1) / count[..., None]).mean(-1))
    return torch.stack(per_layer).mean(0).double().numpy()


def representer_scores(
    queries: DiTFeatures, items: DiTFeatures, n_items: int, rps_lambda: float
) -> np.ndarray:
    """(Q, B) RPS: alpha_i f(z_i)^T f(z_hat) with alpha_i = -mean(Phi(z_i) - z_i) / (lambda n)."""
    alpha = -items.residual.double() / (rps_lambda * n_items)  # (B,)
    kernel = queries.last.double() @ items.last.double().T  # (Q, B)
    return (kernel * alpha[None, :]).numpy()


def baseline_scores(
    target: AttributionTarget,
    model: nn.Module,
    queries: Sequence[Example],
    items: Sequence[object],
    config: ProbeConfig,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """{"activation": (Q, N), "rps": (Q, N)} of the generated samples `queries` (examples of
    batch 1) against the training `items` (through `target.example`). Items are probed in
    batches and compared at once, so memory does not grow with N."""
    if not queries or not items:
        raise TDAConfigError("need at least one query and one training item")
    size = config.items_per_batch
    query_parts = [
        dit_features(target, model, target.collate(list(queries[i : i + size])), config)
        for i in range(0, len(queries), size)
    ]
    q = DiTFeatures.cat(query_parts)
    activation, rps = [], []
    for first in range(0, len(items), size):
        chunk = items[first : first + size]
        batch = target.collate([target.example(item) for item in chunk])
        x = dit_features(target, model, batch, config)
        activation.append(activation_similarity(q, x))
        rps.append(representer_scores(q, x, len(items), config.rps_lambda))
        if progress is not None:
            progress("baselines", first + len(chunk), len(items))
    return {"activation": np.concatenate(activation, 1), "rps": np.concatenate(rps, 1)}


# -- embedding similarity --------------------------------------------------------------------


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    if np.any(norms == 0) or not np.all(np.isfinite(rows)):
        raise TDAConfigError("embeddings must be finite and non-zero")
    return rows / norms


def max_window_similarity(
    query_windows: np.ndarray, item_windows: Sequence[np.ndarray]
) -> np.ndarray:
    """(N,) all-against-all: the highest cosine between any window of the query (w, C) and any
    window of item i (w_i, C)."""
    query = _unit(query_windows)
    out = np.empty(len(item_windows))
    for i, windows in enumerate(item_windows):
        out[i] = float((query @ _unit(windows).T).max())
    return out


def frechet_distance_in_span(a: np.ndarray, b: np.ndarray) -> float:
    """`evaluate.frechet_distance` of two (n, d) sets with few rows, computed in the span of
    their rows: every mean and covariance lives there and FD does not change under an
    orthonormal change of basis, so the result is the same at (r x r) instead of (d x d)
    cost, r <= n_a + n_b (a few CLAP samples in 512-d otherwise cost seconds of sqrtm)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise TDAConfigError("need two (n, d) embedding sets of the same width")
    basis, _ = np.linalg.qr(np.concatenate([a, b]).T)  # (d, r) orthonormal columns
    return frechet_distance(a @ basis, b @ basis)


# -- seed 000 Fig. 1 and Fig. 2 ----------------------------------------------------------------


def correlation_matrix(per_output: Sequence[Mapping[str, np.ndarray]], names: Sequence[str]):
    """Pearson correlation between methods' scores, computed per output and averaged over the
    outputs (a method constant on an output contributes no value there). Returns (M, M),
    symmetric with ones on the diagonal (NaN where no output gives a value)."""
    if not per_output:
        raise TDAConfigError("no outputs to correlate")
    stacked = []
    for scores in per_output:
        rows = np.stack([np.asarray(scores[n], dtype=np.float64) for n in names])
        std = rows.std(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            matrix = np.corrcoef(rows)
        matrix = np.atleast_2d(matrix)
        flat = std == 0
        matrix[flat, :] = np.nan
        matrix[:, flat] = np.nan
        stacked.append(matrix)
    with warnings.catch_warnings():  # "mean of empty slice": NaN is the answer there
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(np.stack(stacked), axis=0)
    mean = (mean + mean.T) / 2
    np.fill_diagonal(mean, 1.0)
    return mean


def normalised_views(
    per_output: Sequence[Mapping[str, np.ndarray]], names: Sequence[str], by: str
) -> dict[str, dict[str, np.ndarray]]:
    """Seed 000 Fig. 1: for every output, the training items sorted by descending `by` scores
    and each method's scores in that order, min-max normalised and as softmax shares
    (temperature = the scores' std, so every method is on its own scale).
    Returns {"minmax" | "softmax": {method: (outputs, N)}}."""
    views: dict[str, dict[str, list[np.ndarray]]] = {"minmax": {}, "softmax": {}}
    for scores in per_output:
        order = np.argsort(-np.asarray(scores[by], dtype=np.float64), kind="stable")
        for name in names:
            values = np.asarray(scores[name], dtype=np.float64)[order]
            views["minmax"].setdefault(name, []).append(minmax(values))
            views["softmax"].setdefault(name, []).append(softmax_shares(values, "std"))
    return {view: {n: np.stack(v) for n, v in methods.items()} for view, methods in views.items()}


# -- self-influence targets and samples --------------------------------------------------------


def kmeans_representatives(embeddings: np.ndarray, k: int, *, seed: int = 0) -> list[int]:
    """Indices of k diverse rows: k-means (k-means++ start, Lloyd iterations, cosine on unit
    rows) and, per cluster, the member closest to its centre. Deterministic for a seed."""
    rows = _unit(embeddings)
    n = rows.shape[0]
    if not isinstance(k, int) or not 1 <= k <= n:
        raise TDAConfigError(f"k must be in [1, {n}]")
    if k == n:
        return list(range(n))
    rng = np.random.default_rng(seed)
    centres = [int(rng.integers(n))]
    for _ in range(1, k):  # k-means++: far rows are likelier next centres
        distance = np.min(1 - rows @ rows[centres].T, axis=1).clip(0)
        total = distance.sum()
        pick = rng.choice(n, p=distance / total) if total > 0 else int(rng.integers(n))
        centres.append(int(pick))
    centre = rows[centres]
    labels = np.zeros(n, dtype=int)
    for _ in range(100):
        labels = np.argmax(rows @ centre.T, axis=1)
        updated = centre.copy()
        for j in range(k):
            members = rows[labels == j]
            if len(members):
                mean = members.mean(axis=0)
                norm = np.linalg.norm(mean)
                updated[j] = mean / norm if norm > 0 else centre[j]
        if np.allclose(updated, centre):
            break
        centre = updated
    chosen: list[int] = []
    similarity = rows @ centre.T  # (n, k)
    for j in range(k):
        candidates = np.flatnonzero(labels == j)
        candidates = [c for c in candidates if c not in chosen] or [
            c for c in np.argsort(-similarity[:, j]) if c not in chosen
        ]
        best = max(candidates, key=lambda c: (similarity[c, j], -c))
        chosen.append(int(best))
    return chosen


def spec_from_conditioning(
    cond: Conditioning,
    roles: Sequence[str],
    *,
    seed: int,
    seconds: float,
    steps: int | None = None,
) -> GenerationSpec:
    """A spec that samples with an example's conditioning (batch of 1): its present references
    (embedding, role, weight) and text, `seconds` long. `Generator` rebuilds the same
    `Conditioning` from it (timing = the output's length)."""
    if cond.batch_size != 1:
        raise TDAConfigError("one example's conditioning (batch of 1) is needed")
    present = cond.ref_mask[0].cpu().numpy()
    embeddings = cond.embeddings[0].detach().cpu().numpy()
    role_ids = cond.roles[0].cpu().numpy()
    weights = cond.weights[0].cpu().numpy()
    references = [
        ReferenceCondition(embeddings[r].astype(np.float32), roles[int(role_ids[r])], float(w))
        for r, w in enumerate(weights)
        if present[r]
    ]
    text = (
        cond.text[0].detach().cpu().numpy().astype(np.float32) if bool(cond.text_mask[0]) else None
    )
    return GenerationSpec(
        references=references, seconds=float(seconds), seed=int(seed), text_embedding=text,
        steps=steps,
    )  # fmt: skip
