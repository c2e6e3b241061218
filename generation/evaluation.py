"""Is the conditioning audible? Measured with the CLAP encoder, not assumed.

For each generation, the output is embedded with the same encoder that embedded the
references; its mean cosine similarity to its own references is compared with its similarity
to random other recordings. Plain module (arrays in, figures out), no Django imports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from catalog.encoders import AudioTextEncoder
from generation.candidates import embed_output, generate_best
from generation.model import GenerationSpec, Generator, ReferenceCondition


@dataclass(frozen=True)
class ConditioningTrial:
    reference_ids: list[int]
    similarity_to_references: float
    similarity_to_others: float


@dataclass
class ConditioningReport:
    trials: list[ConditioningTrial] = field(default_factory=list)

    @property
    def mean_to_references(self) -> float:
        return float(np.mean([t.similarity_to_references for t in self.trials]))

    @property
    def mean_to_others(self) -> float:
        return float(np.mean([t.similarity_to_others for t in self.trials]))

    @property
    def wins(self) -> int:
        """Generations closer to their references than to the random others."""
        return sum(t.similarity_to_references > t.similarity_to_others for t in self.trials)

    def paired_t(self) -> float:
        diffs = np.array([t.similarity_to_references - t.similarity_to_others for t in self.trials])
        if len(diffs) < 2 or diffs.std(ddof=1) == 0:
            return float("nan")
        return float(diffs.mean() / (diffs.std(ddof=1) / np.sqrt(len(diffs))))

    def to_dict(self) -> dict:
        return {
            "generations": len(self.trials),
            "mean_similarity_to_references": round(self.mean_to_references, 4),
            "mean_similarity_to_random_others": round(self.mean_to_others, 4),
            "gap": round(self.mean_to_references - self.mean_to_others, 4),
            "closer_to_references": self.wins,
            "paired_t": round(self.paired_t(), 2),
            # per output, so two models or samplers can be compared output by output
            "gaps": [
                round(t.similarity_to_references - t.similarity_to_others, 4) for t in self.trials
            ],
        }


@dataclass(frozen=True)
class GeneratedTrial:
    """One output of a random reference set, with the random others it is compared to."""

    reference_ids: list[int]
    other_ids: list[int]
    audio: np.ndarray
    seconds_taken: float  # wall time of the generation, all candidates included


def generate_trials(
    *,
    generator: Generator,
    track_vectors: dict[int, np.ndarray],
    generations: int = 20,
    references_per_generation: int = 2,
    others_per_generation: int = 10,
    seconds: float = 10.0,
    seed: int = 0,
    cfg_scale: float | None = None,
    candidates: int = 1,
    encoder: AudioTextEncoder | None = None,
    on_trial: Callable[[int, GeneratedTrial], None] | None = None,
) -> list[GeneratedTrial]:
    """Outputs of random reference sets (the same sets and seeds for every model measured).
    With `candidates` > 1 each output is the best of that many draws, as the worker serves
    it (`generation.candidates`; `encoder` is the references' CLAP encoder)."""
    ids = sorted(track_vectors)
    needed = references_per_generation + others_per_generation
    if len(ids) < needed:
        raise ValueError(f"need at least {needed} embedded recordings, have {len(ids)}")
    rng = np.random.default_rng(seed)
    trials = []
    for n in range(generations):
        chosen = [int(i) for i in rng.choice(ids, size=needed, replace=False)]
        refs, others = chosen[:references_per_generation], chosen[references_per_generation:]
        spec = GenerationSpec(
            references=[ReferenceCondition(track_vectors[rid], "style", 1.0) for rid in refs],
            seconds=min(seconds, generator.max_output_seconds),
            seed=seed * 1000 + n,
            cfg_scale=cfg_scale,
        )
        started = time.monotonic()
        audio = generate_best(generator, spec, count=candidates, encoder=encoder).audio
        trial = GeneratedTrial(refs, others, audio, time.monotonic() - started)
        trials.append(trial)
        if on_trial:
            on_trial(n, trial)
    return trials


def conditioning_of(
    trials: Sequence[GeneratedTrial],
    *,
    sample_rate: int,
    encoder: AudioTextEncoder,
    track_vectors: dict[int, np.ndarray],
) -> ConditioningReport:
    """Each output's similarity to its own references versus to its random others."""
    outputs = [embed_output(t.audio, sample_rate, encoder) for t in trials]
    return conditioning_of_vectors(trials, outputs, track_vectors)


def conditioning_of_vectors(
    trials: Sequence[GeneratedTrial],
    outputs: Sequence[np.ndarray],
    track_vectors: dict[int, np.ndarray],
) -> ConditioningReport:
    """The same comparison in any space: one vector per output and per recording."""
    report = ConditioningReport()
    for trial, output in zip(trials, outputs, strict=True):
        output = np.asarray(output, np.float64) / np.linalg.norm(output)
        report.trials.append(
            ConditioningTrial(
                reference_ids=trial.reference_ids,
                similarity_to_references=_mean_cosine(
                    output, [track_vectors[r] for r in trial.reference_ids]
                ),
                similarity_to_others=_mean_cosine(
                    output, [track_vectors[r] for r in trial.other_ids]
                ),
            )
        )
    return report


def measure_conditioning(
    *,
    generator: Generator,
    encoder: AudioTextEncoder,
    track_vectors: dict[int, np.ndarray],
    generations: int = 20,
    references_per_generation: int = 2,
    others_per_generation: int = 10,
    seconds: float = 10.0,
    seed: int = 0,
    on_trial: Callable[[int, ConditioningTrial], None] | None = None,
) -> ConditioningReport:
    """Generate from random reference sets and compare similarities (see module docstring)."""
    report = ConditioningReport()

    def measured(n: int, trial: GeneratedTrial) -> None:
        one = conditioning_of(
            [trial], sample_rate=generator.sample_rate, encoder=encoder,
            track_vectors=track_vectors,
        ).trials[0]  # fmt: skip
        report.trials.append(one)
        if on_trial:
            on_trial(n, one)

    generate_trials(
        generator=generator, track_vectors=track_vectors, generations=generations,
        references_per_generation=references_per_generation,
        others_per_generation=others_per_generation, seconds=seconds, seed=seed,
        on_trial=measured,
    )  # fmt: skip
    return report


def _mean_cosine(vector: np.ndarray, others: Sequence[np.ndarray]) -> float:
    matrix = np.stack([o / np.linalg.norm(o) for o in others]).astype(np.float64)
    return float((matrix @ vector).mean())
