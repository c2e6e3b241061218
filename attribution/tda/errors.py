"""Typed errors of the TDA module, each with a stable `code` (raised, never asserted)."""

from __future__ import annotations


class TDAError(Exception):
    """Base of every error raised by `attribution.tda`."""

    code = "tda_error"


class TDAConfigError(TDAError, ValueError):
    """A config, an argument or a chunk range is invalid."""

    code = "tda_config"


class StageMismatchError(TDAError):
    """A saved stage (Fisher, unlearned weights, cached losses, scores, fast index) was made with
    other settings, another model version or another training manifest than the ones asked for."""

    code = "tda_stage_mismatch"


class NonFiniteError(TDAError):
    """NaN or infinity where a finite number is needed."""

    code = "tda_non_finite"


class NonFiniteLossError(NonFiniteError):
    """A diffusion loss was NaN or infinite: no score of that chunk is returned or saved."""

    code = "tda_non_finite_loss"


class NonFiniteFisherError(NonFiniteError):
    """The diagonal Fisher (or a gradient feeding it) has NaN or infinite entries."""

    code = "tda_non_finite_fisher"


class NonFiniteGradientError(NonFiniteError):
    """The unlearning gradient of the query has NaN or infinite entries."""

    code = "tda_non_finite_gradient"


class IncompleteRunError(TDAError):
    """Scores were asked for before every chunk of the manifest was scored."""

    code = "tda_incomplete"


class NormalisationError(TDAError):
    """Scores cannot be turned into shares (empty, non-finite, no positive score for top-k)."""

    code = "tda_normalisation"
