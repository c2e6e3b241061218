"""Setup of audio-analysis worker processes. Plain module; must not import librosa or numba
at module level, because it has to run before they are imported.

librosa JIT-compiles numba kernels and caches them on disk. Workers that compile the same
kernels at once, into a cold cache, overwrite each other's entries and then load the wrong
machine code (segfault). Worse, importing laion_clap sets NUMBA_CACHE_DIR=/tmp/ for the whole
process, and spawned workers inherit it, so a fresh machine's first run crashed workers even
after the parent had warmed librosa's own cache. So workers get a cache directory of their
own, and warm it up one at a time under a file lock: the first compiles and writes, the
others (and later pools) only read.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def prepare_analysis_worker(cache_dir: str) -> None:
    """Pool initializer: point numba at the workers' cache, then warm it up under a lock."""
    os.environ["NUMBA_CACHE_DIR"] = cache_dir
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(cache_dir) / ".warm-up.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            from catalog.audio.analysis import compile_analysis_kernels

            compile_analysis_kernels()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
