"""Stopping the streaming job on SIGINT/SIGTERM, and quieting the expected shutdown noise."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import apache_beam as beam

log = logging.getLogger(__name__)


class StopSignals:
    """SIGINT/SIGTERM → a flag the main loop sees; the previous handlers come back after."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop draining
        self.signal = signum
        self.event.set()
        # A signal to the whole process group ends Prism too; the SDK worker threads then
        # report lost connections, which are expected now.
        threading.excepthook = _quiet_thread_error
        quiet_shutdown_logs()

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def run(self, p: beam.Pipeline) -> Any:
        """p.run() with SIGINT ignored meanwhile: Prism, started now, inherits that (a Go
        program started with SIGINT ignored keeps ignoring it), so a terminal's Ctrl-C, which
        reaches the whole process group, cannot kill it under a draining job. Beam's
        job-server SIGINT handler (which stops Prism) is replaced by ours again after."""
        if not self._old:
            return p.run()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return p.run()
        finally:
            signal.signal(signal.SIGINT, self._handle)
            signal.signal(signal.SIGTERM, self._handle)


def _quiet_thread_error(args: Any) -> None:
    log.debug("after the stop signal, thread %s: %s", getattr(args.thread, "name", "?"),
              args.exc_value)


def quiet_shutdown_logs() -> None:
    """Silence the in-process SDK worker's tracebacks for the bundles a cancel cuts short."""
    # Cancelling a portable job makes the in-process SDK worker log tracebacks for the
    # bundles it was running; they are expected.
    for name in ("apache_beam.runners.worker.sdk_worker", "apache_beam.utils.subprocess_server",
                 "apache_beam.runners.worker.data_plane", "apache_beam.runners.portability",
                 "PrismJobServer"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
