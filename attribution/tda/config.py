"""`TDAConfig`: every setting of unlearning-based attribution (seed 000, Eq. 2 with Eq. 6).

Defaults follow seed 000's best configuration: learning rate 1e-6, one step, all transformer
blocks, the "mixed" masking (M_U on when unlearning, M_L off when measuring losses).

The settings are split by the stage they affect (`fisher_settings`, `unlearn_settings`,
`loss_settings`) so a saved stage is reused exactly when its own settings match, e.g. one Fisher
per model version serves every learning rate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from attribution.tda.errors import TDAConfigError

CODE_VERSION = "tda-3"  # bump when a change alters any number a stage produces

LAYER_GROUPS = ("blocks", "self_attn", "cross_attn", "cross_attn_kv")
FISHER_MODES = ("per_timestep", "per_item")
METHODS = ("exact", "first_order")
KERNELS = ("diagonal", "trak")
PROJECTIONS = ("auto", "rademacher", "gaussian", "countsketch")
DTYPES = {"float64": torch.float64, "float32": torch.float32}


@dataclass(frozen=True)
class TDAConfig:
    # -- which computation gives the scores ------------------------------------------------
    # "exact": Eq. 2 with the Eq. 6 update (two loss passes over the manifest per query);
    # "first_order": its first-order expansion lr/N * g_i . F^-1 g_q from a stored index of
    # training gradients (fast.py), the same number when the update is small (the regime
    # check of every run says whether it is).
    method: str = "exact"
    # -- unlearning (Eq. 6): theta <- theta + lr * grad L(z_hat) / (N * F), `steps` times ------
    learning_rate: float = 1e-6  # seed 000 grid 1e-7..1e-1: 1e-6 best
    steps: int = 1  # seed 000: 1 step best
    layer_group: str = "blocks"  # only these parameters change
    unlearn_mask: bool = True  # M_U: padded frames do not count in the unlearning gradient
    loss_mask: bool = False  # M_L: padded frames do not count in the measured losses
    # -- timestep draws (common random numbers: derived from (seed, purpose, item)) -----------
    loss_timesteps: int = 32  # K draws per training item (per bank) for L(z_i, theta)
    # Banks of loss draws: bank b of item i is keyed by (seed, "loss:b", i). An exact run
    # uses the bank its query key picks, so an item's draw noise is not the same fixed bias
    # in every query's score; the first-order index stores a gradient per bank, and the
    # spread between banks is the training side of every score's standard error.
    loss_draw_banks: int = 1
    unlearn_timesteps: int = 64  # draws the query's gradient is averaged over
    fisher_timesteps: int = 16  # draws per training item for the Fisher
    seed: int = 0
    # -- diagonal Fisher -------------------------------------------------------------------
    # per_timestep: mean_t (dL_t/dtheta)^2 (seed 000 section 2.2); per_item: (mean_t dL_t)^2
    fisher_mode: str = "per_timestep"
    # Items the Fisher averages over: 0 = every manifest item; n = n items spread evenly over
    # the manifest (the diagonal Fisher is a mean over the training distribution, so a spread
    # sample estimates it without bias; with ~1,800 windows this keeps it within minutes)
    fisher_items: int = 0
    # Entries of F below max(fisher_eps, fisher_floor * mean(F over the group)) are raised to
    # that value before dividing, so F = 0 (parameters no training item moves) cannot give 0/0
    # or an unbounded step. The count of floored and of exactly zero entries is reported.
    fisher_floor: float = 1e-6
    fisher_eps: float = 1e-30
    accumulate_dtype: str = "float64"  # Fisher, gradients and updates are summed in this
    # -- batching (fixes the batch composition, so results do not depend on sharding) ---------
    items_per_batch: int = 4  # items per loss forward (x loss_timesteps samples)
    grad_batch: int = 16  # samples per vmap(grad) call (Fisher, fast index) or grad chunk
    device: str = "auto"  # "auto": CUDA when available
    # -- fast path (TRAK-style first-order estimate, fast.py) ---------------------------------
    # "auto": dense Rademacher when its matrix fits in 512 MiB, else "countsketch" (sparse
    # Rademacher, O(parameters) per vector); see fast.Projector
    projection: str = "auto"
    projection_dim: int = 512
    # (t, noise) draws of a fast query's gradient; 0: unlearn_timesteps (the exact query's).
    # The query's gradient is nearly all a fast query costs, so fewer draws = faster.
    fast_query_timesteps: int = 0
    # first order's kernel: "diagonal" = lr/N * g_i . F^-1 g_q (seed 000's update, expanded);
    # "trak" = g_i . (Phi^T Phi / N + lambda I)^-1 g_q in the projected, F^-1/2-preconditioned
    # space (TRAK's Gauss-Newton kernel over the training windows' features Phi), lambda =
    # kernel_damping * its mean eigenvalue: directions every window shares are damped
    kernel: str = "diagonal"
    kernel_damping: float = 0.1
    # groups the query's draws are split into (first order): the spread between groups is
    # the query side of every score's standard error
    query_groups: int = 8
    # -- regime check (every run): the query's own-loss rise under the update, and exact vs
    # first-order scores on this many training windows spread over the manifest (0: none)
    regime_probe_items: int = 8

    def __post_init__(self) -> None:
        def require(ok: bool, message: str) -> None:
            if not ok:
                raise TDAConfigError(message)

        require(
            isinstance(self.learning_rate, int | float) and 0 < self.learning_rate < float("inf"),
            "learning_rate must be a finite number > 0",
        )
        for name in ("steps", "loss_timesteps", "unlearn_timesteps", "fisher_timesteps",
                     "items_per_batch", "grad_batch", "projection_dim", "loss_draw_banks",
                     "query_groups"):  # fmt: skip
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 1, f"{name} must be an integer >= 1")
        require(
            isinstance(self.fast_query_timesteps, int) and self.fast_query_timesteps >= 0,
            "fast_query_timesteps must be an integer >= 0",
        )
        require(self.method in METHODS, f"method must be one of {METHODS}")
        require(self.kernel in KERNELS, f"kernel must be one of {KERNELS}")
        require(
            isinstance(self.kernel_damping, int | float) and 0 < self.kernel_damping < 1e6,
            "kernel_damping must be a number > 0",
        )
        require(
            isinstance(self.fisher_items, int) and self.fisher_items >= 0,
            "fisher_items must be an integer >= 0 (0: every item)",
        )
        require(
            isinstance(self.regime_probe_items, int) and self.regime_probe_items >= 0,
            "regime_probe_items must be an integer >= 0",
        )
        require(
            self.method == "exact" or self.loss_draw_banks >= 2,
            "the first-order method needs loss_draw_banks >= 2 (its standard errors come "
            "from the spread between banks)",
        )
        query_draws = self.fast_query_timesteps or self.unlearn_timesteps
        require(
            self.method == "exact"
            or (self.query_groups >= 2 and query_draws % self.query_groups == 0),
            "the first-order method needs query_groups >= 2 that divide the query's draws",
        )
        require(self.layer_group in LAYER_GROUPS, f"layer_group must be one of {LAYER_GROUPS}")
        require(self.fisher_mode in FISHER_MODES, f"fisher_mode must be one of {FISHER_MODES}")
        require(self.projection in PROJECTIONS, f"projection must be one of {PROJECTIONS}")
        require(self.accumulate_dtype in DTYPES, f"accumulate_dtype must be one of {list(DTYPES)}")
        require(0 <= self.fisher_floor < 1, "fisher_floor must be in [0, 1)")
        require(0 < self.fisher_eps < 1e-3, "fisher_eps must be in (0, 1e-3)")
        require(isinstance(self.seed, int) and 0 <= self.seed < 2**63, "seed must be in [0, 2^63)")
        require(isinstance(self.unlearn_mask, bool), "unlearn_mask must be a bool")
        require(isinstance(self.loss_mask, bool), "loss_mask must be a bool")
        require(
            self.device in ("auto", "cpu") or self.device.startswith("cuda"),
            "device must be 'auto', 'cpu' or 'cuda[:n]'",
        )

    # -- serialisation -------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TDAConfig:
        if isinstance(values, cls):
            return values
        if not isinstance(values, Mapping):
            raise TDAConfigError(f"TDAConfig expects a mapping, got {type(values).__name__}")
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise TDAConfigError(f"unknown TDAConfig keys: {sorted(unknown)}")
        try:
            return cls(**values)
        except TypeError as exc:
            raise TDAConfigError(f"bad TDAConfig: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # -- what each stage depends on ------------------------------------------------------------

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.accumulate_dtype]

    def fisher_settings(self) -> dict[str, Any]:
        """The Fisher is per parameter, so it does not depend on the layer group: a Fisher over
        `blocks` serves every sub-group. It uses the measured-loss mask (M_L)."""
        keys = ("fisher_timesteps", "fisher_mode", "seed", "loss_mask", "accumulate_dtype",
                "fisher_items")  # fmt: skip
        return {key: getattr(self, key) for key in keys}

    def unlearn_settings(self) -> dict[str, Any]:
        keys = ("learning_rate", "steps", "layer_group", "unlearn_mask", "unlearn_timesteps",
                "seed", "fisher_floor", "fisher_eps", "accumulate_dtype", "grad_batch")  # fmt: skip
        return {key: getattr(self, key) for key in keys} | {"fisher": self.fisher_settings()}

    def loss_settings(self) -> dict[str, Any]:
        keys = ("loss_timesteps", "loss_mask", "seed", "items_per_batch", "loss_draw_banks")
        return {key: getattr(self, key) for key in keys}

    def fast_settings(self) -> dict[str, Any]:
        keys = ("layer_group", "projection", "projection_dim", "seed", "fisher_floor",
                "fisher_eps", "loss_timesteps", "loss_mask", "loss_draw_banks")  # fmt: skip
        return {key: getattr(self, key) for key in keys} | {"fisher": self.fisher_settings()}

    def loss_bank(self, query_key: str) -> int:
        """The bank of loss draws an exact run of this query uses."""
        if self.loss_draw_banks == 1:
            return 0
        return draw_seed(self.seed, "bank", query_key) % self.loss_draw_banks

    def resolve_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


def draw_seed(seed: int, purpose: str, key: Any) -> int:
    """A 63-bit seed from (config seed, purpose, item index or query digest): the same draws in
    every process, shard and device."""
    text = f"{seed}|{purpose}|{key}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") & (2**63 - 1)


def fingerprint(values: Any) -> str:
    """sha256 of the canonical JSON of `values` (what stage files are keyed and checked by)."""
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
