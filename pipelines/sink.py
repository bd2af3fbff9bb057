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

from docstream.privacy.redact import Redactor, default_redactor
from docstream.schemas.envelope import PartitionMark, WriteBatch
from docstream.store.engine import make_engine
from docstream.store.errors import FencedError, StoreUnavailableError
from docstream.store.writer import StoreWriter

from .offsets import LowWaterMarks
from .outage import CAP_S, Backoff, Outage
from .records import Outcome

log = logging.getLogger(__name__)


@dataclass
class _Shared:
    writer: StoreWriter
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: the low-water marks of each plan (a streaming worker re-plans when its partitions
    #: change, and starts from the positions it claimed then)
    plans: dict[str | None, LowWaterMarks] = field(default_factory=dict)

    def marks(self, plan: str | None,
              start_positions: Mapping[tuple[str, int], int] | None) -> LowWaterMarks | None:
        if start_positions is None:
            return None
        if plan not in self.plans:
            self.plans[plan] = LowWaterMarks(start_positions)
        return self.plans[plan]


_WRITERS: dict[tuple[str, Redactor], _Shared] = {}
_WRITERS_LOCK = threading.Lock()
_WRITTEN: dict[str, int] = {}  # inputs written per run id, in this process

#: How long a batch job waits out a store outage before it stops (a rerun finishes the work).
DEFAULT_STORE_WAIT_S = 60.0


def _count_written(run_id: str, n: int) -> None:
    with _WRITERS_LOCK:
        _WRITTEN[run_id] = _WRITTEN.get(run_id, 0) + n


def written_inputs(run_id: str) -> int:
    """Inputs this process wrote for `run_id` (results + dead letters)."""
    with _WRITERS_LOCK:
        return _WRITTEN.get(run_id, 0)

FAULT_ENV = "DOCSTREAM_FAULT"
FAULT_POINTS = ("after_results",)


def fault_hook(spec: str | None) -> Callable[[str], None] | None:
    """The test hook `DOCSTREAM_FAULT=POINT:N` asks for: at POINT of the Nth batch written,
    SIGKILL this process's whole process group (the job: Python, Prism, SDK workers).

    `after_results` is inside the store transaction, after the partition mark and the result
    rows, before the commit: the kill interrupts that transaction, so neither its rows nor its mark
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


def shared_writer(url: str) -> _Shared:
    """The process's one writer for `url` and the run's redaction policy (`docstream run
    --pii-policy` leaves it in the environment, privacy.redact.activate): all DoFn instances
    and threads share it."""
    redactor = default_redactor()
    with _WRITERS_LOCK:
        if (url, redactor) not in _WRITERS:
            shared = _Shared(StoreWriter(make_engine(url), redactor=redactor))
            shared.writer.set_fault_hook(fault_hook(os.environ.get(FAULT_ENV)))
            _WRITERS[(url, redactor)] = shared
        return _WRITERS[(url, redactor)]


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
    """Writes each Outcome in one transaction; with Kafka, advances partition marks too.

    With `epochs` (a streaming worker's claims, store.offsets.claim_partitions), every batch
    of a partition carries its mark with the epoch, and a batch fenced by a later claimant is
    dropped with a warning (its new owner writes it). `plan` names the claim the
    `start_positions` belong to.

    A transient store failure (StoreUnavailableError: the batch was rolled back whole) is
    retried with capped exponential backoff (pipelines.outage), logging one line when the
    outage starts and one when it ends. `store_wait_s` bounds the wait (None: forever, as the
    streaming job does); past it the error propagates and the job stops.
    """

    def __init__(
        self,
        sink_url: str,
        run_id: str,
        *,
        consumer_group: str | None = None,
        start_positions: Mapping[tuple[str, int], int] | None = None,
        total: int | None = None,
        progress: bool = True,
        store_wait_s: float | None = DEFAULT_STORE_WAIT_S,
        epochs: Mapping[tuple[str, int], int] | None = None,
        plan: str | None = None,
    ) -> None:
        self.sink_url = sink_url
        self.epochs = dict(epochs) if epochs is not None else None
        self.plan = plan
        self.run_id = run_id
        self.consumer_group = consumer_group
        self.start_positions = dict(start_positions) if start_positions is not None else None
        self.total = total
        self.progress_enabled = progress
        self.store_wait_s = store_wait_s
        self.rows = Metrics.counter("docstream", "rows_written")
        self.batches = Metrics.counter("docstream", "write_batches")
        self.isolated = Metrics.counter("docstream", "store_isolated")
        self.retries = Metrics.counter("docstream", "store_retries")
        self.fenced = Metrics.counter("docstream", "batches_fenced")
        self._shared: _Shared | None = None
        self._progress: Progress | None = None
        self._outage = Outage(f"store:{sink_url}", "the store")

    def setup(self) -> None:
        self._shared = shared_writer(self.sink_url)
        self._progress = Progress(self.total, enabled=self.progress_enabled)

    def process(self, outcome: Outcome) -> Iterator[int]:
        yield self.write_waiting(outcome)

    def outage_started(self) -> None:
        """Hook: the store just became unavailable (the streaming job pauses its polls)."""

    def outage_ended(self) -> None:
        """Hook: the store is back."""

    def write_waiting(self, outcome: Outcome) -> int:
        """Write `outcome`, waiting out transient store failures; returns its input count."""
        backoff = Backoff()
        while True:
            try:
                n = self.write(outcome)
            except StoreUnavailableError as e:
                waited = self._outage.seconds()
                if self.store_wait_s is not None and waited >= self.store_wait_s:
                    raise StoreUnavailableError(
                        f"{e} (waited {waited:.0f} s, the limit)") from e
                self._outage.failed(e, then=self._then())
                self.outage_started()
                self.retries.inc()
                time.sleep(backoff.next())
                continue
            if self._outage.recovered() is not None:
                self.outage_ended()
            return n

    def _then(self) -> str:
        limit = ("until it is back" if self.store_wait_s is None
                 else f"for up to {self.store_wait_s:.0f} s")
        return (f"holding writes and retrying with backoff (up to {CAP_S:.0f} s apart) {limit}; "
                "nothing is lost meanwhile")

    def write(self, outcome: Outcome) -> int:
        """One attempt: the outcome (and its partition mark) in one transaction."""
        shared = self._shared
        if shared is None or self._progress is None:
            raise RuntimeError("WriteOutcomes used before setup()")
        with shared.lock:
            marks: list[PartitionMark] = []
            span = outcome.span
            low = shared.marks(self.plan, self.start_positions) if self.consumer_group else None
            tracked = span is not None and low is not None and self.consumer_group
            if tracked:
                before = low.position(span.topic, span.partition)
                after = low.preview(span)
                epoch = (self.epochs or {}).get((span.topic, span.partition))
                if after != before or epoch is not None:
                    marks.append(PartitionMark(consumer_group=self.consumer_group,
                                               topic=span.topic, partition=span.partition,
                                               next_offset=after, epoch=epoch))
            try:
                report = shared.writer.write(WriteBatch(
                    run_id=self.run_id, results=outcome.results, failures=outcome.failures,
                    marks=marks))
            except FencedError as e:
                self.fenced.inc()
                log.warning("%s (%d inputs of offsets %d..%d not written here)", e,
                            len(outcome), span.start if span else -1,
                            span.end - 1 if span else -1)
                return 0
            if tracked:  # only once the rows and the mark are committed together
                low.complete(span)
        isolated = getattr(report, "isolated", 0)
        if isolated:
            self.isolated.inc(isolated)
        _count_written(self.run_id, len(outcome))
        self.rows.inc(len(outcome))
        self.batches.inc()
        self._progress.add(len(outcome))
        return len(outcome)
