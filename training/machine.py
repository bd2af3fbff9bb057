"""How training uses this machine's CPU: its thread count and numeric precision.

Both defaults follow `python -m bench.train_speed` on an idle 2-core Xeon (avx512_bf16, no
AMX; bench/results/train-speed-2026-12-03.txt), LoRA training windows/s:

    CPU                      1 thread fp32 / bf16    2 threads fp32 / bf16
    native avx512_bf16       20.4 / 14.5             27.2 / 22.0
    AVX2 only (emulated)     17.7 /  1.5             28.7 /  1.5

- Threads: two threads train 33-62% faster than one on an idle machine, so every core is
  used. The exception is a small machine another process is already using: there, each
  parallel region waits for the thread that lost its core, and a two-thread step was
  measured up to 5x slower than a one-thread step. That is checked once, at the start.
- Precision: fp32 beats bf16 autocast on CPUs without AMX, even with native avx512_bf16,
  and bf16 is ~19x slower without native bf16. bf16 stays the choice on AMX and on CUDA.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil
import torch

from docstream.model.predictor import Precision, cpu_has_amx

from .config import TrainConfig

#: machines with at most this many cores drop to one thread when others keep them busy
SMALL_MACHINE_CORES = 2
#: cores other processes must be using (over the sample) for a small machine to be "shared"
BUSY_CORES = 0.5
SAMPLE_S = 0.5


@dataclass(frozen=True)
class ThreadChoice:
    """Torch's CPU thread count, and why it was chosen (for the training log)."""

    threads: int
    why: str


def others_busy_cores(sample_s: float = SAMPLE_S) -> float:
    """Cores that other processes kept busy over `sample_s` seconds, while this one slept."""
    me = psutil.Process()
    sys0, own0, t0 = psutil.cpu_times(), me.cpu_times(), time.monotonic()
    time.sleep(sample_s)
    sys1, own1, t1 = psutil.cpu_times(), me.cpu_times(), time.monotonic()

    def busy(t: Any) -> float:  # guest time is already inside user time; steal is not ours
        return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq"))

    own = (own1.user + own1.system) - (own0.user + own0.system)
    return max(0.0, (busy(sys1) - busy(sys0) - own) / max(t1 - t0, 1e-6))


def pick_threads(threads: int | None = None, *,
                 busy: Callable[[], float] | None = None,
                 cores: int | None = None) -> ThreadChoice:
    """Explicit `threads`, then $DOCSTREAM_TORCH_THREADS, then every core unless shared.

    `busy` (cores other processes use) and `cores` are injectable for tests.
    """
    if threads:
        return ThreadChoice(threads, "--threads")
    env = int(os.environ.get("DOCSTREAM_TORCH_THREADS", "0") or 0)
    if env:
        return ThreadChoice(env, "$DOCSTREAM_TORCH_THREADS")
    n_cores = cores or os.cpu_count() or 1
    default = max(1, min(torch.get_num_threads(), n_cores))
    if n_cores <= SMALL_MACHINE_CORES and default > 1:
        others = (busy or others_busy_cores)()
        if others >= BUSY_CORES:
            return ThreadChoice(1, f"other processes use {others:.1f} of {n_cores} cores")
        return ThreadChoice(default, f"idle {n_cores}-core machine")
    return ThreadChoice(default, f"{n_cores} cores")


def configure_threads(threads: int | None = None) -> ThreadChoice:
    """Choose (see `pick_threads`) and set torch's CPU thread count; returns the choice."""
    choice = pick_threads(threads)
    torch.set_num_threads(choice.threads)
    return choice


def train_precision(config: TrainConfig, device: torch.device) -> Precision:
    """bf16 autocast on CUDA (when supported) and on CPUs with AMX, else fp32; or as asked."""
    if config.precision != "auto":
        return config.precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_amx() else "fp32"
