"""KafkaBatch invariants and the in-flight gate (pure Python)."""

from __future__ import annotations

import threading

import pytest

from docstream.streaming.flow import InFlight
from docstream.streaming.records import KafkaBatch, KafkaRecord


def rec(offset: int, ts: int = 0) -> KafkaRecord:
    return KafkaRecord("t", 0, offset, b"k", b"{}", ts)


def test_batch_covers_skipped_offsets_and_may_be_empty() -> None:
    b = KafkaBatch("t", 0, 10, 14, [rec(10, 5), rec(12, 9)])  # 11, 13: markers
    assert len(b) == 2 and b.max_timestamp_ms == 9
    empty = KafkaBatch("t", 0, 14, 15)  # only a transaction marker: still advances
    assert len(empty) == 0 and empty.max_timestamp_ms is None


@pytest.mark.parametrize("start, end", [(5, 4), (-1, 3)])
def test_batch_rejects_bad_ranges(start: int, end: int) -> None:
    with pytest.raises(ValueError, match="bad offset range"):
        KafkaBatch("t", 0, start, end)


def test_gate_limits_counts_exactly_and_ignores_repeats() -> None:
    gate = InFlight("test-gate-1", limit=100)
    try:
        gate.add(("t", 0, 0, 60), 60)
        assert gate.admit()
        gate.add(("t", 1, 0, 40), 40)
        assert not gate.admit()
        assert gate.done(("t", 0, 0, 60))
        assert not gate.done(("t", 0, 0, 60))  # delivered twice downstream
        st = gate.state()
        assert (st.records, st.batches, st.done_records, st.duplicates) == (40, 1, 60, 1)
        assert gate.admit()
        gate.stop()
        assert not gate.admit() and gate.stopping
    finally:
        gate.reset()


def test_gate_is_shared_by_name_and_thread_safe() -> None:
    a, b = InFlight("test-gate-2", 10**9), InFlight("test-gate-2", 10**9)
    try:
        def work(i: int) -> None:
            for j in range(1000):
                a.add((i, j), 1)
                b.done((i, j))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        st = a.state()
        assert (st.records, st.batches, st.done_records, st.duplicates) == (0, 0, 8000, 0)
    finally:
        a.reset()


def test_gate_rejects_a_useless_limit() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        InFlight("x", 0)
