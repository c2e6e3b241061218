"""Training-data attribution by unlearning (seed 000: Eq. 2 with the Eq. 6 update, diagonal
Fisher, masks M_U / M_L), plus a TRAK-style first-order fast path and evaluation helpers.

Plain torch, no Django. Stages: `fisher.compute_fisher` -> `unlearn.unlearn` ->
`score.score_chunk`, wrapped by `run.AttributionRun` (saved, resumable, refuses to mix runs).
The model is reached only through an `AttributionTarget` (`target.py`); the platform's DiT is
adapted in `platform_model.py` (imported lazily by `build_target("mel-dit", config=...)`).
See attribution/tda/README.md.
"""

from attribution.tda.config import CODE_VERSION, LAYER_GROUPS, TDAConfig, fingerprint
from attribution.tda.errors import (
    IncompleteRunError,
    NonFiniteError,
    NonFiniteFisherError,
    NonFiniteGradientError,
    NonFiniteLossError,
    NormalisationError,
    StageMismatchError,
    TDAConfigError,
    TDAError,
)
from attribution.tda.evaluate import (
    SelfInfluenceReport,
    clap_top_bottom,
    frechet_distance,
    self_influence,
    spearman,
    target_rank,
)
from attribution.tda.fast import (
    FastIndex,
    FirstOrderScores,
    Projector,
    compare,
    fast_index_file_name,
    load_or_build_index,
    time_per_query,
)
from attribution.tda.fisher import (
    FisherInfo,
    FloorReport,
    compute_fisher,
    fisher_file_name,
    load_or_compute_fisher,
)
from attribution.tda.normalise import minmax, softmax_shares, topk_shares
from attribution.tda.regime import RegimeCheck, regime_check
from attribution.tda.run import AttributionResult, AttributionRun
from attribution.tda.score import (
    BaseLossCache,
    ScoreChunk,
    chunk_ranges,
    concatenate,
    item_losses,
    score_chunk,
)
from attribution.tda.target import (
    AttributionTarget,
    Example,
    Manifest,
    build_target,
    draws,
    example_digest,
    model_digest,
    per_sample_grads,
    register_target,
)
from attribution.tda.uncertainty import RecordingScores, by_recording, standard_errors
from attribution.tda.unlearn import (
    UnlearnResult,
    apply_params,
    group_gradients,
    unlearn,
    unlearning_gradient,
)

__all__ = [
    "FirstOrderScores",
    "RecordingScores",
    "RegimeCheck",
    "by_recording",
    "fast_index_file_name",
    "group_gradients",
    "load_or_build_index",
    "regime_check",
    "standard_errors",
    "CODE_VERSION",
    "LAYER_GROUPS",
    "AttributionResult",
    "AttributionRun",
    "AttributionTarget",
    "BaseLossCache",
    "Example",
    "FastIndex",
    "FisherInfo",
    "FloorReport",
    "IncompleteRunError",
    "Manifest",
    "NonFiniteError",
    "NonFiniteFisherError",
    "NonFiniteGradientError",
    "NonFiniteLossError",
    "NormalisationError",
    "Projector",
    "ScoreChunk",
    "SelfInfluenceReport",
    "StageMismatchError",
    "TDAConfig",
    "TDAConfigError",
    "TDAError",
    "UnlearnResult",
    "apply_params",
    "build_target",
    "chunk_ranges",
    "clap_top_bottom",
    "compare",
    "compute_fisher",
    "concatenate",
    "draws",
    "example_digest",
    "fingerprint",
    "fisher_file_name",
    "frechet_distance",
    "item_losses",
    "load_or_compute_fisher",
    "minmax",
    "model_digest",
    "per_sample_grads",
    "register_target",
    "score_chunk",
    "self_influence",
    "softmax_shares",
    "spearman",
    "target_rank",
    "time_per_query",
    "topk_shares",
    "unlearn",
    "unlearning_gradient",
]
