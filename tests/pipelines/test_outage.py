"""The writer stage waits out transient store failures: capped backoff, one log line when an
outage starts and one when it ends, the sources paused meanwhile, and a bound for batch jobs.
A fake writer stands in for the database here; tests/pipelines/test_stream_outages.py and
tests/pipelines/test_batch_outages.py restart the real PostgreSQL."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from docstream.pipelines import outage as outage_mod
from docstream.pipelines.outage import Backoff, Outage
from docstream.pipelines.records import Outcome
from docstream.pipelines.sink import WriteOutcomes, _Shared
from docstream.pipelines.stream_fns import StreamWriteOutcomes
from docstream.store.errors import StoreUnavailableError, StoreWriteError
from docstream.streaming.flow import InFlight


class FlakyWriter:
    """Fails `failures` times with a transient error (or `error`), then writes."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or StoreUnavailableError("the database at x is unavailable "
                                                    "(connection refused)")
        self.attempts = 0
        self.written = 0

    def write(self, batch: Any) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise self.error
        self.written += len(batch)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(outage_mod.time, "sleep", slept.append, raising=False)
    import docstream.pipelines.sink as sink

    monkeypatch.setattr(sink.time, "sleep", slept.append)
    return slept


def make(cls: type[WriteOutcomes], writer: FlakyWriter, **kwargs: Any) -> WriteOutcomes:
    fn = cls(f"sqlite:///{uuid.uuid4().hex}.db", "run-1", progress=False, **kwargs)
    fn._shared = _Shared(writer)  # type: ignore[arg-type]
    from docstream.pipelines.sink import Progress

    fn._progress = Progress(None, enabled=False)
    return fn


def test_backoff_doubles_up_to_its_cap() -> None:
    b = Backoff(initial_s=0.5, cap_s=30.0)
    assert [b.next() for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
        caplog: pytest.LogCaptureFixture) -> None:
    o = Outage(uuid.uuid4().hex)
    with caplog.at_level(logging.WARNING, logger="docstream.outage"):
        for _ in range(5):
            o.failed(RuntimeError("connection refused\nmore detail"), then="waiting")
        assert o.down
        assert o.recovered() is not None
        assert o.recovered() is None  # nothing to end twice
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0] == "the store is unavailable: connection refused; waiting"
    assert lines[1].startswith("the store is back after ") and "(5 failed attempts)" in lines[1]


def test_transient_failures_are_retried_with_backoff(no_sleep: list[float]) -> None:
    writer = FlakyWriter(failures=4)
    fn = make(WriteOutcomes, writer)
    assert list(fn.process(Outcome(results=[], failures=[]))) == [0]
    assert writer.attempts == 5
    assert no_sleep == [0.5, 1.0, 2.0, 4.0]


def test_a_batch_job_gives_up_after_its_wait_with_a_count(
        monkeypatch: pytest.MonkeyPatch) -> None:
    writer = FlakyWriter(failures=10**6)
    fn = make(WriteOutcomes, writer, store_wait_s=5.0)
    clock = iter(range(0, 10**6, 2))
    monkeypatch.setattr(outage_mod.time, "monotonic", lambda: float(next(clock)))
    with pytest.raises(StoreUnavailableError, match=r"waited \d+ s, the limit\)"):
        list(fn.process(Outcome()))
    assert writer.attempts >= 3


def test_other_failures_are_not_waited_out() -> None:
    writer = FlakyWriter(failures=1, error=StoreWriteError("the batch was refused"))
    fn = make(WriteOutcomes, writer)
    with pytest.raises(StoreWriteError, match="refused"):
        list(fn.process(Outcome()))
    assert writer.attempts == 1


def test_the_stream_writer_pauses_the_sources_until_the_store_is_back() -> None:
    gate = InFlight(uuid.uuid4().hex, limit=100)
    seen: list[bool] = []

    class Watching(FlakyWriter):
        def write(self, batch: Any) -> None:
            seen.append(gate.admit())
            super().write(batch)

    writer = Watching(failures=3)
    fn = make(StreamWriteOutcomes, writer, gate=gate)
    assert fn.store_wait_s is None  # a stream waits as long as the outage lasts
    assert list(fn.process(Outcome())) == [(None, 0)]
    assert seen == [True, False, False, False]  # paused from the first failure on
    assert gate.admit()  # and resumed once written
    gate.reset()
