"""Owner epochs in stream_offsets: a worker that lost its partition never writes it again,
in every order of claim and write (SQLite and the real PostgreSQL)."""

from __future__ import annotations

import threading
import time

import pytest

from docstream.schemas.envelope import PartitionMark, WriteBatch
from docstream.store.errors import FencedError
from docstream.store.offsets import claim_partitions, load_owners, load_positions
from docstream.store.tables import AuditRow, ClassificationRow
from docstream.store.writer import StoreWriter
from tests.store.test_writer import count, result, writer  # noqa: F401 (fixture)

KEY = ("posts", 0)


def batch(run_id: str, first: int, n: int, epoch: int | None) -> WriteBatch:
    return WriteBatch(
        run_id=run_id, results=[result(f"d{i}", i + 1) for i in range(first, first + n)],
        marks=[PartitionMark(consumer_group="g", topic="posts", partition=0,
                             next_offset=first + n, epoch=epoch)])


def test_a_claim_raises_the_epoch_names_the_owner_and_reads_the_position(
        writer: StoreWriter) -> None:  # noqa: F811
    first = claim_partitions(writer.engine, "g", "w1", [KEY, ("posts", 1)], {KEY: 5})
    assert (first[KEY].epoch, first[KEY].next_offset) == (1, 5)
    assert first[("posts", 1)].next_offset == 0
    writer.write(batch("stream-g-w1", 5, 3, epoch=1))
    second = claim_partitions(writer.engine, "g", "w2", [KEY])
    assert (second[KEY].epoch, second[KEY].next_offset) == (2, 8)
    assert load_owners(writer.engine, "g")[KEY] == (2, "w2")
    assert load_owners(writer.engine, "other") == {}


def test_a_late_writer_is_fenced_and_writes_nothing(writer: StoreWriter) -> None:  # noqa: F811
    claim_partitions(writer.engine, "g", "w1", [KEY])
    writer.write(batch("stream-g-w1", 0, 2, epoch=1))
    claim_partitions(writer.engine, "g", "w2", [KEY])  # w1 stalled; w2 took over at 2
    with pytest.raises(FencedError, match=r"posts/0 of group g: .* epoch 1, the store now says "
                                          r"epoch 2, owner w2"):
        writer.write(batch("stream-g-w1", 2, 3, epoch=1))
    assert count(writer, ClassificationRow) == 2 and count(writer, AuditRow) == 2
    assert load_positions(writer.engine, "g")[KEY] == 2
    writer.write(batch("stream-g-w2", 2, 3, epoch=2))
    assert count(writer, ClassificationRow) == 5 and count(writer, AuditRow) == 5
    assert load_positions(writer.engine, "g")[KEY] == 5


def test_a_write_without_a_claim_row_is_fenced(writer: StoreWriter) -> None:  # noqa: F811
    with pytest.raises(FencedError, match="no claim at all"):
        writer.write(batch("r", 0, 1, epoch=1))
    assert count(writer, ClassificationRow) == 0


def test_a_fenced_batch_that_would_not_move_the_position_is_refused_too(
        writer: StoreWriter) -> None:  # noqa: F811
    """A batch behind another one (out of order) carries the same position; still fenced."""
    claim_partitions(writer.engine, "g", "w1", [KEY])
    writer.write(batch("r1", 0, 4, epoch=1))
    claim_partitions(writer.engine, "g", "w2", [KEY])
    late = WriteBatch(run_id="r1", results=[result("late", 9)], marks=[PartitionMark(
        consumer_group="g", topic="posts", partition=0, next_offset=4, epoch=1)])
    with pytest.raises(FencedError):
        writer.write(late)
    assert count(writer, ClassificationRow) == 4


def test_a_claim_waits_for_the_write_in_progress_and_resumes_after_it(
        writer: StoreWriter) -> None:  # noqa: F811
    """The write holds the partition's row from its first statement to its commit: a claim
    made meanwhile waits, then returns the position that includes the batch."""
    claim_partitions(writer.engine, "g", "w1", [KEY])
    in_write = threading.Event()

    def slow(point: str) -> None:
        in_write.set()
        time.sleep(1.0)

    writer.set_fault_hook(slow)
    t = threading.Thread(target=writer.write, args=(batch("stream-g-w1", 0, 3, epoch=1),))
    t.start()
    assert in_write.wait(10)
    claimed = claim_partitions(writer.engine, "g", "w2", [KEY])
    t.join(10)
    assert (claimed[KEY].epoch, claimed[KEY].next_offset) == (2, 3)
    assert count(writer, ClassificationRow) == 3
