"""Waiting out a store outage: capped exponential backoff, and one log line when an outage
starts and one when it ends, however many writer threads are waiting.

The writer stage (pipelines.sink) retries a batch only while the store says the failure is
transient (`docstream.store.errors.StoreUnavailableError`: connection refused or reset,
server shutting down, serialization failure, deadlock); anything else is not waited out.

Example:
    >>> b = Backoff(initial_s=0.5, cap_s=4.0)
    >>> [b.next() for _ in range(6)]
    [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger("docstream.outage")

INITIAL_S = 0.5
CAP_S = 30.0


@dataclass
class Backoff:
    """Delays of 0.5, 1, 2, 4 … seconds, never more than `cap_s`."""

    initial_s: float = INITIAL_S
    cap_s: float = CAP_S
    _next: float = 0.0

    def next(self) -> float:
        delay = self._next or self.initial_s
        self._next = min(delay * 2, self.cap_s)
        return min(delay, self.cap_s)


@dataclass
class _State:
    since: float | None = None  # monotonic start of the current outage
    wall_since: float = 0.0
    failures: int = 0
    outages: int = 0
    total_s: float = 0.0  # seconds of the outages that ended
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class OutageSnapshot:
    """An outage's state for metrics (pipelines.metrics): down now, for how long, and the
    seconds and number of all outages in this process (the current one included)."""

    down: bool
    current_s: float
    total_s: float
    outages: int


_LOCK = threading.Lock()
_STATES: dict[str, _State] = {}


class Outage:
    """Process-wide outage bookkeeping for the store named `name` (one per store URL)."""

    def __init__(self, name: str, what: str = "the store") -> None:
        self.name = name
        self.what = what

    def _state(self) -> _State:
        with _LOCK:
            return _STATES.setdefault(self.name, _State())

    @property
    def down(self) -> bool:
        return self._state().since is not None

    @property
    def outages(self) -> int:
        """How many outages ended (or started) in this process."""
        return self._state().outages

    def failed(self, error: BaseException, then: str) -> None:
        """A write failed transiently. Logs once per outage: what failed, and what happens next."""
        st = self._state()
        with st.lock:
            st.failures += 1
            if st.since is not None:
                return
            st.since, st.wall_since = time.monotonic(), time.time()
            st.outages += 1
        log.warning("%s is unavailable: %s; %s", self.what, _one_line(error), then)

    def recovered(self) -> float | None:
        """A write succeeded. Logs the end of an outage with its duration; returns it (s)."""
        st = self._state()
        with st.lock:
            if st.since is None:
                return None
            seconds = time.monotonic() - st.since
            failures, st.since, st.failures = st.failures, None, 0
            st.total_s += seconds
        log.warning("%s is back after %.1f s of outage (%d failed attempt%s); writing again",
                    self.what, seconds, failures, "" if failures == 1 else "s")
        return seconds

    def seconds(self) -> float:
        """How long the current outage has lasted (0 when none)."""
        since = self._state().since
        return 0.0 if since is None else time.monotonic() - since

    def snapshot(self) -> OutageSnapshot:
        st = self._state()
        with st.lock:
            current = 0.0 if st.since is None else time.monotonic() - st.since
            return OutageSnapshot(st.since is not None, current, st.total_s + current,
                                  st.outages)


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__
