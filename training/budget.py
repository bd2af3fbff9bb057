"""The time budget of `docstream train`: one limit for the whole command.

`--limit-minutes` bounds everything from the start of the command to a complete artifact:
start-up and imports, data preparation, building the model, the training loop, and the work
after the loop (writing the weights, loading them back as `run` does, fitting the
temperature over validation windows, checking each numeric mode, writing the manifest).

What is measured, and when:

- the clock starts at the process start (`process_age`, from /proc on Linux) when the CLI
  runs, else when `train` is called;
- before the loop, `costs.measure_post_costs` times what the post-loop work is made of
  (`PostCosts`): loading the base encoder, building each checked predictor (int8:
  quantization), a forward pass per window in each checked precision on a sample of
  validation windows, and one aggregation pass over the validation documents;
- during the loop, `StepTimer` keeps the measured step times, and every validation pass is
  timed.

Planning: `plan_post` sizes the post-loop work. It may take at most POST_SHARE of the time
left after setup (or what the smallest useful set needs); when the whole validation set does
not fit, calibration and the precision checks run on a stratified prefix of the validation
documents, and the manifest records how many. `Budget` then gives the loop the rest: before
each step the loop asks whether the step (at the measured step time) plus what stopping
would need (a checkpoint, and the validation pass that compares the current state with the
best one, when there is a best one) fits before the reserve. After the loop the post-loop
set is planned again with the time actually left, so a run that ends early calibrates on the
whole validation set.

Distillation (`--teacher`): the teachers' pass runs after the reserve is set and before the
loop, and may use at most half of the loop's time (training/teachers.py); it is timed block
by block, refuses the run when the training texts cannot all be labelled in that share, and
labels unlabelled texts only while the loop can still afford them.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The post-loop work may use at most this share of the time left after setup (unless the
#: smallest useful calibration set needs more).
POST_SHARE = 0.25
#: Estimates are multiplied by this before reserving time (the CPU is shared; timings jitter).
SAFETY = 1.3
#: Seconds kept free at the end in any case, plus END_SHARE of the limit (process exit,
#: the summary line, clock jitter).
MARGIN_S = 1.0
END_SHARE = 0.02
#: `DocClassifier` passes over the calibration documents after the loop: the temperature fit
#: (a 25-point grid, then about 20 golden-section steps), the metrics before and after, and
#: one accuracy pass per checked precision.
AGG_PASSES = 55
#: Never calibrate on fewer documents than this (or all, when there are fewer).
MIN_POST_DOCS = 16

Clock = Callable[[], float]


def process_age() -> float | None:
    """Seconds since this process started (Linux /proc), or None where unknown.

    The start time is field 22 of /proc/self/stat, in clock ticks after boot; /proc/uptime is
    the seconds since boot now.
    """
    try:
        stat = Path("/proc/self/stat").read_text(encoding="ascii")
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text(encoding="ascii").split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def process_start(clock: Clock = time.perf_counter) -> float:
    """The process start on `clock`'s scale (now, where the start is unknown)."""
    now = clock()
    age = process_age()
    return now - age if age is not None else now


@dataclass(frozen=True)
class PostCosts:
    """Measured (or estimated) seconds of the work after the training loop.

    Attributes:
        load_s: loading the written artifact back (base encoder, adapter merge).
        build_s: per checked precision, building its predictor (int8: quantizing a copy).
        window_s: per precision, forward seconds per validation window; the keys are the
            precisions the post-loop work checks (fp32 first), plus the training precision.
        checked: the precisions the post-loop work runs (fp32 and the ones it checks).
        doc_s: one aggregation pass (`DocClassifier.probabilities` on cached logits), per doc.
        write_s: writing and hashing the weights and manifests.
        checkpoint_s: writing a checkpoint (weights, best state, optimizer moments).
    """

    load_s: float
    build_s: dict[str, float]
    window_s: dict[str, float]
    checked: tuple[str, ...]
    doc_s: float
    write_s: float
    checkpoint_s: float

    def fixed_s(self) -> float:
        """Seconds that do not grow with the calibration set."""
        return self.load_s + sum(self.build_s.get(p, 0.0) for p in self.checked) + self.write_s

    def per_window_s(self) -> float:
        """Forward seconds per calibration window, over all checked precisions."""
        return sum(self.window_s[p] for p in self.checked)

    def estimate(self, windows: int, docs: int) -> float:
        """Seconds of the post-loop work on `docs` documents holding `windows` windows."""
        return self.fixed_s() + windows * self.per_window_s() + docs * self.doc_s * AGG_PASSES

    def validation_s(self, precision: str, windows: int, docs: int) -> float:
        """Seconds of one validation pass in `precision` (the loop's, at the train precision)."""
        per_window = self.window_s.get(precision, max(self.window_s.values(), default=0.0))
        return windows * per_window + docs * self.doc_s

    def as_dict(self) -> dict[str, Any]:
        """For the manifest: milliseconds per window, seconds otherwise."""
        return {
            "load_s": round(self.load_s, 2),
            "build_s": {k: round(v, 3) for k, v in self.build_s.items()},
            "ms_per_window": {k: round(v * 1000, 2) for k, v in self.window_s.items()},
            "ms_per_doc_pass": round(self.doc_s * 1000, 3),
            "write_s": round(self.write_s, 2),
            "checkpoint_s": round(self.checkpoint_s, 2),
        }


def reserve_for(estimate_s: float, limit_s: float | None) -> float:
    """Seconds to keep for work estimated at `estimate_s`: with safety factor and margins."""
    return SAFETY * estimate_s + MARGIN_S + END_SHARE * (limit_s or 0.0)


def stratified_indices(labels: Sequence[int], seed: int) -> list[int]:
    """Indices in a seeded order in which every prefix keeps the label proportions.

    Like `data.stratified_order`: each label's indices are shuffled, index i of a label with
    n items gets the key (i + 0.5) / n, and the indices are sorted by key.
    """
    rng = random.Random(seed)
    by_label: dict[int, list[int]] = defaultdict(list)
    for i, y in enumerate(labels):
        by_label[int(y)].append(i)
    keyed: list[tuple[float, int, int]] = []
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        keyed += [((k + 0.5) / len(group), label, i) for k, i in enumerate(group)]
    keyed.sort()
    return [t[2] for t in keyed]


@dataclass(frozen=True)
class PostPlan:
    """Which validation documents the post-loop work uses, and the time kept for it.

    Attributes:
        docs: indices of the validation documents to calibrate and check on (sorted).
        windows: their windows.
        of_docs: validation documents in all.
        of_windows: validation windows in all.
        estimate_s: the estimated seconds of the post-loop work on this set.
        reserve_s: the seconds kept for it (`reserve_for(estimate_s)`).
    """

    docs: tuple[int, ...]
    windows: int
    of_docs: int
    of_windows: int
    estimate_s: float
    reserve_s: float

    @property
    def capped(self) -> bool:
        """Whether the set is a subset of the validation documents."""
        return len(self.docs) < self.of_docs

    def as_dict(self) -> dict[str, Any]:
        return {"docs": len(self.docs), "of_docs": self.of_docs, "windows": self.windows,
                "of_windows": self.of_windows, "capped": self.capped}


def plan_post(
    costs: PostCosts,
    doc_windows: Sequence[int],
    order: Sequence[int],
    allowance_s: float | None,
    limit_s: float | None,
    min_docs: int = MIN_POST_DOCS,
) -> PostPlan:
    """The largest prefix of `order` whose reserve fits `allowance_s` (None: every document).

    Args:
        costs: the measured post-loop costs.
        doc_windows: windows per validation document.
        order: the documents in the order they are taken (`stratified_indices`).
        allowance_s: seconds the post-loop work may take, margins included; None: no limit.
        limit_s: the run's limit (for the end margin).
        min_docs: take at least this many documents (all if fewer), whatever the allowance.
    """
    n_all = len(doc_windows)
    cumulative = [0]
    for i in order:
        cumulative.append(cumulative[-1] + doc_windows[i])

    def reserve(n: int) -> float:
        return reserve_for(costs.estimate(cumulative[n], n), limit_s)

    if allowance_s is None:
        n = n_all
    else:
        lo, hi = 0, n_all  # reserve(n) grows with n: binary search the largest n that fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if reserve(mid) <= allowance_s:
                lo = mid
            else:
                hi = mid - 1
        n = max(lo, min(min_docs, n_all))
    estimate = costs.estimate(cumulative[n], n)
    return PostPlan(docs=tuple(sorted(order[:n])), windows=cumulative[n], of_docs=n_all,
                    of_windows=cumulative[-1], estimate_s=estimate,
                    reserve_s=reserve_for(estimate, limit_s))


class StepTimer:
    """Recent step times; the estimate of the next step leans to the slow side."""

    def __init__(self, window: int = 8) -> None:
        self.window = window
        self.times: list[float] = []

    def add(self, seconds: float) -> None:
        self.times.append(seconds)

    @property
    def count(self) -> int:
        return len(self.times)

    def median(self) -> float | None:
        """Median of all steps so far (None before the first)."""
        return statistics.median(self.times) if self.times else None

    def estimate(self) -> float | None:
        """The next step's seconds: the larger of the last step and the recent median.

        The first step of a run carries one-time costs (kernel selection, allocations), so
        once later steps exist it is left out.
        """
        if not self.times:
            return None
        recent = self.times[1:][-self.window:] or self.times
        return max(recent[-1], statistics.median(recent))


@dataclass
class Budget:
    """The run's clock: its start, its limit, and the seconds reserved after the loop.

    Attributes:
        limit_s: seconds for the whole command; None: no limit.
        started: the start on `clock`'s scale.
        clock: the clock (perf_counter; tests pass their own).
        reserve_s: seconds kept for the post-loop work (set once it is planned).
        marks: named times (seconds since the start) of the run's phases.
    """

    limit_s: float | None
    started: float
    clock: Clock = time.perf_counter
    reserve_s: float = 0.0
    marks: dict[str, float] = field(default_factory=dict)

    @property
    def limited(self) -> bool:
        return self.limit_s is not None

    def elapsed(self) -> float:
        return self.clock() - self.started

    def remaining(self) -> float:
        """Seconds left before the limit (inf without a limit)."""
        return math.inf if self.limit_s is None else self.limit_s - self.elapsed()

    def loop_left(self) -> float:
        """Seconds the loop may still use: the remaining time less the reserve."""
        return self.remaining() - self.reserve_s

    def fits(self, seconds: float) -> bool:
        """Whether work of `seconds` ends before the reserve starts."""
        return seconds <= self.loop_left()

    def deadline(self) -> float:
        """When the loop must have ended, on the clock's scale (inf without a limit)."""
        return self.clock() + self.loop_left()

    def mark(self, name: str) -> float:
        """Record that phase `name` ended now; returns the elapsed seconds."""
        self.marks[name] = self.elapsed()
        return self.marks[name]


def describe(info: Mapping[str, Any]) -> str:
    """One line on how a run spent its budget (`TrainResult.budget`, manifest
    `training.budget`), for the summary."""
    stopped = info.get("stopped_by")
    if stopped == "budget":
        at = info.get("stopped_at") or {}
        text = (f"stopped by the time limit in epoch {at.get('epoch')} after "
                f"{at.get('batch')} of {at.get('of_batches')} batches (step {at.get('step')} of "
                f"{info.get('steps_planned')})")
    elif stopped == "converged":
        text = "converged (early stopping)"
    else:
        text = "ran every epoch"
    chunks = info.get("training_chunks") or {}
    if chunks and chunks.get("used", 0) < chunks.get("of", 0):
        text += f"; trained on {chunks['used']} of {chunks['of']} training chunks"
    cal = info.get("calibration") or {}
    if cal.get("capped"):
        text += f"; calibrated and checked on {cal['docs']} of {cal['of_docs']} val docs"
    used, limit = info.get("used_s"), info.get("limit_s")
    if limit:
        text += f"; {used:.0f} s of the {limit:.0f} s limit used"
    elif used is not None:
        text += f"; {used:.0f} s (no time limit)"
    if stopped == "budget" and info.get("checkpoint_kept"):
        text += "; the checkpoint is kept: add --resume to train on from it"
    return text
