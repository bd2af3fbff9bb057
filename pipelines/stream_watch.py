"""Watching a running streaming job and draining it: when to stop or re-plan, how long the
in-flight batches may take to be written, and where the job's time went (the summary's
timings). Used by pipelines.stream."""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from apache_beam.runners.runner import PipelineState

from docstream.streaming.flow import InFlight

from .handler import LOADS
from .metrics import Exporter
from .reporter import Reporter
from .shutdown import StopSignals, quiet_shutdown_logs
from .stream_fns import WriteClock
from .stream_options import StreamOptions

log = logging.getLogger(__name__)


def model_load(t0: float) -> tuple[float, float] | None:
    """(seconds loading, seconds from `t0` until loaded) of this job's first model load."""
    for end, seconds in list(LOADS):
        if end >= t0:
            return seconds, end - t0
    return None


def timings(clock: WriteClock, t0: float) -> dict[str, Any]:
    """The summary's model_load_s, model_ready_s, first_result_s, steady_docs_per_s and
    write_units (None where not measured)."""
    load = model_load(t0)
    written = clock.state()
    return {
        "model_load_s": load[0] if load else None,
        "model_ready_s": load[1] if load else None,
        "first_result_s": (written.first_at - t0) if written else None,
        "steady_docs_per_s": written.steady_docs_per_s() if written else None,
        "write_units": written.units if written else 0,
    }


def job_state(result: Any) -> Any:
    """The job's state; None when Prism cannot be asked (it is gone)."""
    try:
        return result.state
    except Exception as e:  # grpc errors: the job service went away
        log.debug("job state unavailable: %s", e)
        return None


def watch(result: Any, stop: StopSignals, reporter: Reporter, options: StreamOptions,
           t0: float, exporter: Exporter | None = None, clock: WriteClock | None = None,
           replan: Callable[[], bool] | None = None) -> str:
    """Wait for a stop signal, the time limit, the job's end or (`replan`) a change of the
    worker's partitions; returns the run status ("replan" for the last)."""
    while True:
        state = job_state(result)
        if state is None or PipelineState.is_terminal(state):
            # A signal to the whole process group may have ended Prism first: still a stop.
            if stop.event.wait(1.0):
                quiet_shutdown_logs()
                return "stopped"
            log.error("the pipeline ended by itself (state %s)", state or "unknown: Prism gone")
            return "failed" if state != PipelineState.DONE else "done"
        if clock is not None and not reporter.first_result_reported:
            written = clock.state()
            if written is not None:
                load = model_load(t0)
                reporter.first_result(written.first_at - t0, load[0] if load else None,
                                      load[1] if load else None)
        if stop.event.wait(0.5):
            name = signal.Signals(stop.signal).name if stop.signal else "signal"
            print(f"[docstream] {name}: draining (finishing the batches already read)",
                  file=sys.stderr, flush=True)
            return "stopped"
        if options.max_seconds is not None and time.monotonic() - t0 >= options.max_seconds:
            return "stopped"
        if replan is not None and replan():
            return "replan"
        reporter.tick()
        if exporter is not None:
            exporter.refresh()


def drain(result: Any, gate: InFlight, use_gate: bool, options: StreamOptions) -> None:
    """Stop reading, let what was read be written (bounded wait), then cancel the job."""
    state = job_state(result)
    if state is None or PipelineState.is_terminal(state):
        return
    if use_gate:
        gate.stop()
        deadline = time.monotonic() + options.drain_timeout_s
        while gate.state().batches > 0 and time.monotonic() < deadline:
            state = job_state(result)
            if state is None or PipelineState.is_terminal(state):
                break
            time.sleep(0.1)
        left = gate.state().batches
        if left:
            log.warning("drain timed out with %d batch(es) unwritten; a restart replays them",
                        left)
    quiet_shutdown_logs()
    try:
        result.cancel()
        result.wait_until_finish(duration=30_000)
    except Exception as e:  # the job is going away anyway
        log.debug("while cancelling: %s", e)
