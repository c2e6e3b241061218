"""The platform's generative model: a diffusion transformer over log-mel spectrograms,
conditioned by cross-attention on reference CLAP embeddings (role, weight), an optional text
prompt and timing; v-objective, classifier-free guidance, SDEdit, inpainting; Griffin-Lim out.

Plain torch, no Django. Importing this package imports torch (and numpy) but not librosa,
which is imported when a mel front end is built. See generation/model/README.md.
"""

from generation.model.audio import MelFrontend
from generation.model.checkpoint import load_generator, save_generator
from generation.model.conditioning import Conditioning, collate
from generation.model.config import (
    ROLES,
    DiTConfig,
    GeneratorConfig,
    GeneratorError,
    MelConfig,
    SamplerConfig,
    TrainConfig,
)
from generation.model.diffusion import diffusion_loss, sample
from generation.model.dit import DiffusionTransformer, layer_groups
from generation.model.pipeline import (
    GenerationSpec,
    Generator,
    ReferenceCondition,
    continuation_windows,
    pick_device,
)
from generation.model.training import (
    GeneratorTrainingItem,
    TrainingReport,
    canonical_example,
    train_generator,
    window_example,
    window_layout,
    window_starts,
)

__all__ = [
    "ROLES",
    "Conditioning",
    "DiTConfig",
    "DiffusionTransformer",
    "GenerationSpec",
    "Generator",
    "GeneratorConfig",
    "GeneratorError",
    "GeneratorTrainingItem",
    "MelConfig",
    "MelFrontend",
    "ReferenceCondition",
    "SamplerConfig",
    "TrainConfig",
    "TrainingReport",
    "canonical_example",
    "collate",
    "continuation_windows",
    "diffusion_loss",
    "layer_groups",
    "load_generator",
    "pick_device",
    "sample",
    "save_generator",
    "train_generator",
    "window_example",
    "window_layout",
    "window_starts",
]
