"""Best of several candidates: sample a request a few times, keep the output that sounds most
like its references.

A diffusion sample is one draw; some draws follow their references more closely than others.
The served path draws `count` candidates (the request's seed, then seeds derived from it) and
keeps the one whose audio, embedded by the CLAP encoder the references were embedded with, has
the highest weighted mean cosine similarity to the reference embeddings (with no references:
to the text prompt). Measured on 200 outputs (docs/generation.md), the choice also moved the
outputs closer to real music in musicnn's space, which it never looks at. Plain module (no
Django imports): the worker and the evaluation pass the generator and the encoder in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from catalog.encoders import AudioTextEncoder, WindowSpec, split_windows
from generation.model import GenerationSpec, Generator, GeneratorError

MAX_CANDIDATES = 8
# Candidate k > 0 samples with seed + k * SEED_STRIDE (mod 2**63): far from the seeds a long
# output's later windows use (seed + window index), and candidate 0 is the request's own seed.
SEED_STRIDE = 0x9E3779B97F4A7C15 >> 1


@dataclass(frozen=True)
class CandidateChoice:
    """The kept candidate of one request, and what the choice was made on."""

    logmel: np.ndarray
    audio: np.ndarray
    index: int  # which candidate was kept (0: the request's own seed)
    seed: int  # the kept candidate's sampling seed
    similarities: tuple[float, ...]  # each candidate's similarity to the references; () for one

    def to_dict(self) -> dict[str, object]:
        """What the attribution log keeps about the choice."""
        return {
            "count": max(1, len(self.similarities)),
            "kept": self.index,
            "kept_seed": self.seed,
            "similarities": [round(s, 5) for s in self.similarities],
        }


def candidate_seed(seed: int, index: int) -> int:
    return (int(seed) + index * SEED_STRIDE) % 2**63


def embed_output(audio: np.ndarray, sample_rate: int, encoder: AudioTextEncoder) -> np.ndarray:
    """Unit track vector of generated audio in the encoder's space."""
    import librosa

    if sample_rate != encoder.sample_rate:
        audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=encoder.sample_rate)
    spec = WindowSpec(encoder.window_seconds, encoder.window_seconds, min_seconds=1.0)
    windows = split_windows(np.asarray(audio, dtype=np.float32), encoder.sample_rate, spec)
    vectors = encoder.embed_audio(np.stack([w for _, w in windows])).astype(np.float64)
    mean = vectors.mean(axis=0)
    return mean / np.linalg.norm(mean)


def similarity_to_request(output: np.ndarray, spec: GenerationSpec) -> float:
    """Weighted mean cosine of a unit output vector to the request's references (its text
    prompt when it has none)."""
    if spec.references:
        targets = [np.asarray(r.embedding, np.float64) for r in spec.references]
        weights = np.array([float(r.weight) for r in spec.references])
    elif spec.text_embedding is not None:
        targets, weights = [np.asarray(spec.text_embedding, np.float64)], np.ones(1)
    else:
        raise GeneratorError("a request without references or a prompt has nothing to match")
    cosines = np.array([t @ output / np.linalg.norm(t) for t in targets])
    return float(cosines @ weights / weights.sum())


def draws_for(spec: GenerationSpec, count: int) -> int:
    """How many draws a request gets: `count` for new music, one otherwise. Transforming or
    inpainting a maker's track keeps one draw, so the track, not the references, leads."""
    new_music = spec.init_audio is None
    return count if new_music and (spec.references or spec.text_embedding is not None) else 1


def generate_best(
    generator: Generator,
    spec: GenerationSpec,
    *,
    count: int,
    encoder: AudioTextEncoder | None,
    progress: Callable[[int, int], None] | None = None,
) -> CandidateChoice:
    """Sample `count` candidates of `spec` and keep the one most similar to its references.
    With one draw (`draws_for`) it samples once, with the request's own seed."""
    if not 1 <= count <= MAX_CANDIDATES:
        raise GeneratorError(f"candidates must be in [1, {MAX_CANDIDATES}], got {count}")
    generator.validate(spec)
    if draws_for(spec, count) == 1:
        logmel = generator.generate_mel(spec, progress=progress)
        return CandidateChoice(logmel, generator.render(logmel, spec), 0, int(spec.seed), ())
    if encoder is None:
        raise GeneratorError("comparing candidates needs the references' CLAP encoder")
    kept: CandidateChoice | None = None
    similarities: list[float] = []
    for index in range(count):
        candidate = replace(spec, seed=candidate_seed(spec.seed, index))
        logmel = generator.generate_mel(candidate, progress=_share(progress, index, count))
        audio = generator.render(logmel, candidate)
        similarity = similarity_to_request(
            embed_output(audio, generator.sample_rate, encoder), spec
        )
        similarities.append(similarity if np.isfinite(similarity) else -1.0)  # silence: last
        if kept is None or similarities[-1] > similarities[kept.index]:
            kept = CandidateChoice(logmel, audio, index, int(candidate.seed), ())
    return replace(kept, similarities=tuple(similarities))


def _share(
    progress: Callable[[int, int], None] | None, index: int, count: int
) -> Callable[[int, int], None] | None:
    """Candidate `index`'s steps as a part of the whole request's progress."""
    if progress is None:
        return None

    def step(done: int, total: int) -> None:
        progress(index * total + done, count * total)

    return step
