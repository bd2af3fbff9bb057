"""In-flight accounting between the source and the end of the pipeline, in one process.

The source asks `admit()` before each poll and `add()`s each batch it emits, by its key
(topic, partition, start, end); the pipeline's last stage calls `done(key)` once the batch is
written. The source stops polling while `limit` records are in flight, which bounds the
memory of a job that starts with a large backlog, and for good once `stop()` was called (a
drain waits until nothing is in flight), and while `pause()`d: the writer pauses the
sources during a store outage, so that a backlog waits in Kafka, not in memory. Keys
make the counts exact even if a runner delivers a batch downstream twice: the second
`done` finds nothing to remove.

Works because the Beam SDK worker runs inside the launching process (Prism's LOOPBACK
environment): the handle is pickled into the DoFns, the counters live in this module, keyed
by name. In a multi-process SDK environment the counts would not meet; don't use it there.

Example:
    >>> gate = InFlight("doc-example", limit=10)
    >>> gate.admit()
    True
    >>> gate.add(("t", 0, 0, 10), records=10)
    >>> gate.admit(), gate.state().records
    (False, 10)
    >>> gate.done(("t", 0, 0, 10)), gate.done(("t", 0, 0, 10))
    (True, False)
    >>> gate.admit(), gate.state().duplicates
    (True, 1)
    >>> gate.pause(); gate.admit()
    False
    >>> gate.resume(); gate.admit()
    True
    >>> gate.reset()
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import dataclass, field

_LOCK = threading.Lock()
_STATES: dict[str, _State] = {}


@dataclass
class _State:
    pending: dict[Hashable, int] = field(default_factory=dict)
    records: int = 0
    emitted_records: int = 0
    emitted_batches: int = 0
    done_records: int = 0
    done_batches: int = 0
    duplicates: int = 0
    stopping: bool = False
    paused: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Snapshot:
    records: int
    batches: int
    emitted_records: int
    emitted_batches: int
    done_records: int
    done_batches: int
    duplicates: int
    stopping: bool
    paused: bool


class InFlight:
    """A picklable handle on the process-wide in-flight counters named `name`."""

    def __init__(self, name: str, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"in-flight limit must be >= 1 record, got {limit}")
        self.name = name
        self.limit = limit

    def _state(self) -> _State:
        with _LOCK:
            st = _STATES.get(self.name)
            if st is None:
                st = _STATES[self.name] = _State()
            return st

    def admit(self) -> bool:
        """May the source poll now? False while `limit` records are in flight, while paused
        (the end of the pipeline cannot write: a store outage) or once stopping."""
        st = self._state()
        return not st.stopping and not st.paused and st.records < self.limit

    def pause(self) -> None:
        """Hold the sources back until `resume()` (the records in flight still finish)."""
        self._state().paused = True

    def resume(self) -> None:
        self._state().paused = False

    def add(self, key: Hashable, records: int) -> None:
        st = self._state()
        with st.lock:
            st.records += records - st.pending.get(key, 0)
            st.pending[key] = records
            st.emitted_records += records
            st.emitted_batches += 1

    def done(self, key: Hashable) -> bool:
        """Mark a batch written; False when it was not in flight (a repeat delivery)."""
        st = self._state()
        with st.lock:
            records = st.pending.pop(key, None)
            if records is None:
                st.duplicates += 1
                return False
            st.records -= records
            st.done_records += records
            st.done_batches += 1
            return True

    def stop(self) -> None:
        self._state().stopping = True

    @property
    def stopping(self) -> bool:
        return self._state().stopping

    def state(self) -> Snapshot:
        st = self._state()
        with st.lock:
            return Snapshot(st.records, len(st.pending), st.emitted_records,
                            st.emitted_batches, st.done_records, st.done_batches,
                            st.duplicates, st.stopping, st.paused)

    def restart(self) -> None:
        """Admit polls again after `stop()`, forgetting batches that never finished (a new
        plan reads them again from the stored positions)."""
        st = self._state()
        with st.lock:
            st.records -= sum(st.pending.values())
            st.pending.clear()
            st.stopping = False

    def reset(self) -> None:
        with _LOCK:
            _STATES.pop(self.name, None)
