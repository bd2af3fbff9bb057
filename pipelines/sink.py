"""The writer stage: one StoreWriter per store per process, fed with whole outcomes."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.metrics import Metrics

from docstream.schemas.envelope import PartitionMark, WriteBatch
from docstream.store.engine import make_engine
from docstream.store.writer import StoreWriter

from .offsets import LowWaterMarks
from .records import Outcome

log = logging.getLogger(__name__)


@dataclass
class _Shared:
    writer: StoreWriter
    lock: threading.Lock = field(default_factory=threading.Lock)
    marks: LowWaterMarks | None = None


_WRITERS: dict[str, _Shared] = {}
_WRITERS_LOCK = threading.Lock()

FAULT_ENV = "DOCSTREAM_FAULT"
FAULT_POINTS = ("after_results",)


def fault_hook(spec: str | None) -> Callable[[str], None] | None:
    """The test hook `DOCSTREAM_FAULT=POINT:N` asks for: at POINT of the Nth batch written,
    SIGKILL this process's whole process group (the job: Python, Prism, SDK workers).

    `after_results` is inside the store transaction, after the result rows and before the
    partition mark: the kill interrupts that transaction, so neither its rows nor its mark
    become durable, and a restart replays the batch from the last committed mark.

    Example:
        >>> fault_hook(None) is None
        True
        >>> fault_hook("after_results:0")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: DOCSTREAM_FAULT='after_results:0': expected POINT:N with N >= 1 ...
    """
    if not spec:
        return None
    point, _, n = spec.partition(":")
    if point not in FAULT_POINTS or not n.isdigit() or int(n) < 1:
        raise ValueError(f"{FAULT_ENV}={spec!r}: expected POINT:N with N >= 1 and POINT one of "
                         f"{', '.join(FAULT_POINTS)}")
    target = int(n)
    seen = {"n": 0}

    def hook(at: str) -> None:
        if at != point:
            return
        seen["n"] += 1
        if seen["n"] == target:
            log.warning("%s=%s: killing process group %d at %s of batch %d",
                        FAULT_ENV, spec, os.getpgrp(), at, target)
            sys.stderr.flush()
            os.killpg(os.getpgrp(), signal.SIGKILL)

    return hook


def shared_writer(url: str, start_positions: Mapping[tuple[str, int], int] | None) -> _Shared:
    """The process's one writer for `url`: all DoFn instances and threads share it."""
    with _WRITERS_LOCK:
        if url not in _WRITERS:
            shared = _Shared(StoreWriter(make_engine(url)))
            shared.writer.set_fault_hook(fault_hook(os.environ.get(FAULT_ENV)))
            if start_positions is not None:
                shared.marks = LowWaterMarks(start_positions)
            _WRITERS[url] = shared
        return _WRITERS[url]


class Progress:
    """Docs done, docs/s and ETA, printed to stderr every few seconds."""

    def __init__(self, total: int | None, every_s: float = 3.0, enabled: bool = True) -> None:
        self.total = total
        self.every_s = every_s
        self.enabled = enabled
        self.done = 0
        self.started = time.monotonic()
        self._last = 0.0

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self._last >= self.every_s:
            self._last = now
            rate = self.done / max(now - self.started, 1e-9)
            line = f"[docstream] {self.done:,} docs, {rate:,.0f} docs/s"
            if self.total:
                left = max(self.total - self.done, 0)
                eta = left / rate if rate > 0 else float("inf")
                line = (f"[docstream] {self.done:,}/{self.total:,} docs "
                        f"({100 * self.done / self.total:.0f}%), {rate:,.0f} docs/s, "
                        f"ETA {eta:,.0f} s")
            print(line, file=sys.stderr, flush=True)


class WriteOutcomes(beam.DoFn):
    """Writes each Outcome in one transaction; with Kafka, advances partition marks too."""

    def __init__(
        self,
        sink_url: str,
        run_id: str,
        *,
        consumer_group: str | None = None,
        start_positions: Mapping[tuple[str, int], int] | None = None,
        total: int | None = None,
        progress: bool = True,
    ) -> None:
        self.sink_url = sink_url
        self.run_id = run_id
        self.consumer_group = consumer_group
        self.start_positions = dict(start_positions) if start_positions is not None else None
        self.total = total
        self.progress_enabled = progress
        self.rows = Metrics.counter("docstream", "rows_written")
        self.batches = Metrics.counter("docstream", "write_batches")
        self._shared: _Shared | None = None
        self._progress: Progress | None = None

    def setup(self) -> None:
        self._shared = shared_writer(self.sink_url, self.start_positions)
        self._progress = Progress(self.total, enabled=self.progress_enabled)

    def process(self, outcome: Outcome) -> Iterator[int]:
        shared = self._shared
        if shared is None or self._progress is None:
            raise RuntimeError("WriteOutcomes used before setup()")
        with shared.lock:
            marks: list[PartitionMark] = []
            span = outcome.span
            tracked = span is not None and shared.marks is not None and self.consumer_group
            if tracked:
                before = shared.marks.position(span.topic, span.partition)
                after = shared.marks.preview(span)
                if after != before:
                    marks.append(PartitionMark(consumer_group=self.consumer_group,
                                               topic=span.topic, partition=span.partition,
                                               next_offset=after))
            shared.writer.write(WriteBatch(run_id=self.run_id, results=outcome.results,
                                           failures=outcome.failures, marks=marks))
            if tracked:  # only once the rows and the mark are committed together
                shared.marks.complete(span)
        self.rows.inc(len(outcome))
        self.batches.inc()
        self._progress.add(len(outcome))
        yield len(outcome)
