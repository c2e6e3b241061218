"""How fast the generator runs: real-time factor of one generation, split by stage."""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch

from generation.model.pipeline import GenerationSpec, Generator, ReferenceCondition


def measure_real_time_factor(
    generator: Generator, seconds: float = 10.0, repeats: int = 3, threads: int | None = None
) -> dict[str, Any]:
    """Median wall time of `repeats` generations of `seconds` s (default sampler settings, one
    reference, so CFG is on) divided by `seconds`, after one warm-up run.

    Returns rtf (total / seconds), the median seconds of sampling (the DiT) and of rendering
    (mel inverse + Griffin-Lim), and the settings measured. `threads` sets torch's CPU
    threads for the measurement (restored afterwards).
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _measure(generator, seconds, repeats)
    finally:
        torch.set_num_threads(previous)


def _measure(generator: Generator, seconds: float, repeats: int) -> dict[str, Any]:
    seconds = min(seconds, generator.max_seconds)
    rng = np.random.default_rng(0)
    embedding = rng.standard_normal(generator.config.dit.cond_dim).astype(np.float32)
    spec = GenerationSpec(
        references=[ReferenceCondition(embedding, generator.roles[0], 1.0)],
        seconds=seconds,
        seed=0,
    )
    sampling, rendering = [], []
    for run in range(repeats + 1):
        started = time.perf_counter()
        mel = generator.generate_mel(spec)
        middle = time.perf_counter()
        generator.render(mel, spec)
        ended = time.perf_counter()
        if run:  # the first run warms up allocators and kernels
            sampling.append(middle - started)
            rendering.append(ended - middle)
    totals = [a + b for a, b in zip(sampling, rendering, strict=True)]
    total = statistics.median(totals)
    return {
        "rtf": total / seconds,
        "seconds_generated": seconds,
        "median_seconds": total,
        "sampling_seconds": statistics.median(sampling),
        "griffin_lim_seconds": statistics.median(rendering),
        "steps": generator.config.sampler.steps,
        "cfg_scale": generator.config.sampler.cfg_scale,
        "guidance_interval": list(generator.config.sampler.guidance_interval),
        "griffin_lim_iters": generator.config.mel.griffin_lim_iters,
        "repeats": repeats,
        "device": generator.device,
        "torch_threads": torch.get_num_threads(),
    }
