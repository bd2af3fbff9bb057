"""One bad row never sinks a batch: records the database refuses become stage-"store" dead
letters, the rest of the batch (and its partition marks) commits in the same transaction.

On both stores (db_url) for what both refuse (lone surrogates, integers beyond 64 bits), on
PostgreSQL for what only it refuses (NUL, over-long varchar, NaN in JSON, int32 overflow).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from docstream.privacy.redact import stored_payload
from docstream.schemas import Classification, DeadLetter, InputPosition, ModelRef
from docstream.schemas.envelope import FailedRecord, PartitionMark, ResultRecord, WriteBatch
from docstream.store.engine import make_engine
from docstream.store.errors import StoreUnavailableError, StoreWriteError
from docstream.store.migrate import upgrade
from docstream.store.offsets import load_positions
from docstream.store.refused import REASON, storable_position
from docstream.store.tables import AuditRow, ClassificationRow, DeadLetterRow
from docstream.store.writer import StoreWriter

REF = ModelRef(name="news-topic", version="1", weights_sha256="a" * 64)


def pos(line: int, file: str = "in.jsonl") -> InputPosition:
    return InputPosition(kind="file", file=file, line=line)


def result(doc: str, line: int, **changes: Any) -> ResultRecord:
    c = {"doc_id": doc, "source": "", "label": "Sports", "score": 0.9,
         "scores": {"Sports": 0.9, "World": 0.1}, "model": REF}
    c.update({k: v for k, v in changes.items() if k in Classification.model_fields})
    rest = {k: v for k, v in changes.items() if k not in Classification.model_fields}
    at = rest.pop("position", pos(line))
    return ResultRecord(result=Classification(**c), position=at, input_sha256="c" * 64, **rest)


def failure(line: int, position: InputPosition | None = None, **changes: Any) -> FailedRecord:
    d = {"position": position or pos(line), "payload": b"{oops \x00\xff", "stage": "parse",
         "reason": "invalid_json", "error": "invalid JSON"}
    d.update(changes)
    return FailedRecord(dead_letter=DeadLetter(**d), input_sha256="d" * 64)


@pytest.fixture()
def writer(db_url: str) -> Iterator[StoreWriter]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield StoreWriter(engine)
    engine.dispose()


@pytest.fixture()
def pg_writer(pg_url: str) -> Iterator[StoreWriter]:
    engine = make_engine(pg_url)
    upgrade(engine)
    yield StoreWriter(engine)
    engine.dispose()


class Statements:
    """The SQL statements an engine sends, by first word."""

    def __init__(self, engine: Engine) -> None:
        self.seen: list[str] = []
        event.listen(engine, "before_cursor_execute", self._on)

    def _on(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        self.seen.append(statement.split(None, 1)[0].upper())

    def count(self, word: str) -> int:
        return self.seen.count(word)


def dead_letter(writer: StoreWriter, position: str) -> Any:
    with writer.engine.connect() as conn:
        return conn.execute(select(DeadLetterRow).where(DeadLetterRow.position == position)
                            ).mappings().one()


def audit(writer: StoreWriter, run_id: str, position: str) -> Any:
    with writer.engine.connect() as conn:
        return conn.execute(select(AuditRow).where(AuditRow.run_id == run_id,
                                                   AuditRow.position == position)
                            ).mappings().one()


def rows(writer: StoreWriter, table: type) -> int:
    with writer.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_one_bad_result_does_not_sink_its_batch(writer: StoreWriter,
                                                caplog: pytest.LogCaptureFixture) -> None:
    bad = result("bad", 5, title="a lone surrogate \ud800 in the title")
    mark = PartitionMark(consumer_group="g", topic="t", partition=0, next_offset=42)
    batch = WriteBatch(run_id="r", results=[result(f"d{i}", i) for i in range(1, 5)] + [bad]
                       + [result(f"d{i}", i) for i in range(6, 12)],
                       failures=[failure(20), failure(21)], marks=[mark])
    with caplog.at_level(logging.WARNING, logger="docstream.store.writer"):
        report = writer.write(batch)
    assert (report.results, report.dead_letters, report.isolated) == (10, 3, 1)
    assert report.isolated_positions == ("file:in.jsonl:5",)
    assert rows(writer, ClassificationRow) == 10 and rows(writer, AuditRow) == 13
    assert load_positions(writer.engine, "g") == {("t", 0): 42}  # the mark advanced with it
    dl = dead_letter(writer, "file:in.jsonl:5")
    assert (dl["stage"], dl["reason"], dl["doc_id"]) == ("store", REASON, "bad")
    assert "surrogates not allowed" in dl["error"] and "replay" in dl["error"]
    refused = json.loads(dl["payload"])
    assert refused["docstream"] == "refused_result"
    assert refused["record"]["title"] == "a lone surrogate \ud800 in the title"
    a = audit(writer, "r", "file:in.jsonl:5")
    assert (a["outcome"], a["stage"], a["model_version"]) == ("dead_letter", "store",
                                                              "news-topic@1")
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "file:in.jsonl:5" in warning and "surrogates not allowed" in warning


def test_a_refused_dead_letter_keeps_its_payload(writer: StoreWriter) -> None:
    bad = failure(3, error="could not decode \udcff", doc_id="p\udcfe")
    report = writer.write(WriteBatch(run_id="r", results=[result("a", 1)], failures=[bad]))
    assert (report.results, report.dead_letters, report.isolated) == (1, 1, 1)
    dl = dead_letter(writer, "file:in.jsonl:3")
    assert dl["payload"] == stored_payload(b"{oops \x00\xff")  # the input as any dead letter's
    assert dl["doc_id"] == "p\\udcfe"  # sanitized: the dead letter itself was refused first
    assert "parse/invalid_json" in dl["error"] and "\\udcff" in dl["error"]


def test_an_unstorable_position_is_stored_sanitized(writer: StoreWriter) -> None:
    # a file name that is not UTF-8 reaches Python with lone surrogates (surrogateescape)
    odd = pos(1, file="posts-\udcff.jsonl")
    huge = InputPosition(kind="kafka", topic="t", partition=0, offset=2**70)
    writer.write(WriteBatch(run_id="r", results=[result("a", 1, position=odd)],
                            failures=[failure(0, position=huge), failure(2)]))
    stored = storable_position(odd.ref)
    assert stored != odd.ref and stored.startswith("file:posts-\\udcff.jsonl:1…#")
    assert dead_letter(writer, stored)["stage"] == "store"
    assert audit(writer, "r", stored)["outcome"] == "dead_letter"
    dl = dead_letter(writer, huge.ref)  # the position fits; the offset column does not
    assert (dl["stage"], dl["offset"], dl["payload"]) == (
        "store", None, stored_payload(b"{oops \x00\xff"))
    assert dead_letter(writer, "file:in.jsonl:2")["stage"] == "parse"


def test_a_clean_batch_costs_no_savepoint(writer: StoreWriter) -> None:
    seen = Statements(writer.engine)
    batch = WriteBatch(run_id="r", results=[result(f"d{i}", i) for i in range(1, 51)],
                       failures=[failure(60)])
    assert writer.write(batch).isolated == 0
    assert seen.count("SAVEPOINT") == 0
    # classifications, dead letters, resolution, audit: which positions are recorded, the
    # chain's head (read and locked), the records, the new head (+ BEGIN on SQLite)
    assert len([s for s in seen.seen if s != "BEGIN"]) == 7


def test_bisection_finds_one_bad_record_in_few_savepoints(writer: StoreWriter) -> None:
    seen = Statements(writer.engine)
    records = [result(f"d{i}", i) for i in range(1, 129)]
    records[77] = result("bad\ud800", 78)
    report = writer.write(WriteBatch(run_id="r", results=records))
    assert report.isolated_positions == ("file:in.jsonl:78",)
    # at most 2 tries per level (7 levels for 128), the unit itself, and 2 for its dead
    # letter (its doc id holds the surrogate: refused as it is, then stored sanitized)
    assert seen.count("SAVEPOINT") <= 2 * math.ceil(math.log2(128)) + 3
    assert rows(writer, ClassificationRow) == 127


def test_every_record_refused(writer: StoreWriter) -> None:
    batch = WriteBatch(run_id="r", results=[result(f"\ud800{i}", i) for i in range(1, 6)],
                       failures=[failure(9, doc_id="\udc80")])
    report = writer.write(batch)
    assert (report.results, report.dead_letters, report.isolated) == (0, 6, 6)
    assert rows(writer, DeadLetterRow) == 6 and rows(writer, ClassificationRow) == 0


def test_a_poison_batch_written_twice_is_idempotent(writer: StoreWriter) -> None:
    batch = WriteBatch(run_id="r", results=[result("a", 1), result("b\ud800", 2)])
    writer.write(batch)
    writer.write(batch)  # a retry of the same batch (same run)
    assert rows(writer, AuditRow) == 2 and rows(writer, ClassificationRow) == 1
    assert dead_letter(writer, "file:in.jsonl:2")["count"] == 2


def test_a_fault_during_isolation_rolls_back_everything(writer: StoreWriter) -> None:
    def boom(point: str) -> None:
        raise RuntimeError(f"fault at {point}")

    writer.set_fault_hook(boom)
    batch = WriteBatch(run_id="r", results=[result("a", 1), result("b\ud800", 2)],
                       marks=[PartitionMark(consumer_group="g", topic="t", partition=0,
                                            next_offset=2)])
    with pytest.raises(RuntimeError, match="after_results"):
        writer.write(batch)
    assert rows(writer, ClassificationRow) == rows(writer, DeadLetterRow) == 0
    assert rows(writer, AuditRow) == 0 and load_positions(writer.engine, "g") == {}


# (what PostgreSQL refuses, the record, words of its message)
PG_REFUSALS: list[tuple[str, ResultRecord | FailedRecord, str]] = [
    ("NUL in a title", result("nul", 101, title="a\x00b"), "NUL"),
    ("NUL in a doc id", result("nul\x00id", 102), "NUL"),
    ("doc id over varchar(256)", result("x" * 257, 103), "value too long"),
    ("label over varchar(128)", result("long-label", 104, label="L" * 129), "value too long"),
    ("NaN in scores JSON", result("nan", 105, scores={"Sports": math.nan}), "json"),
    ("infinity in timings JSON", result("inf", 106, timings_ms={"infer": math.inf}), "json"),
    ("line beyond int32", failure(2**40), "integer out of range"),
    ("NUL in a dead letter's error", failure(107, error="bad \x00 byte"), "NUL"),
    ("source over varchar(256)", failure(108, source="s" * 300), "value too long"),
]


def test_postgresql_refusals_are_isolated(pg_writer: StoreWriter) -> None:
    for i, (what, bad, words) in enumerate(PG_REFUSALS):
        run = f"run{i}"
        good = [result(f"g{i}-{j}", 1000 * (i + 1) + j) for j in range(5)]
        report = pg_writer.write(WriteBatch(
            run_id=run, results=good + ([bad] if isinstance(bad, ResultRecord) else []),
            failures=[bad] if isinstance(bad, FailedRecord) else []))
        ref = bad.position.ref if isinstance(bad, ResultRecord) else \
            bad.dead_letter.position.ref
        assert report.isolated_positions == (ref,), what
        assert report.results == 5, what
        dl = dead_letter(pg_writer, ref)
        assert dl["stage"] == "store" and words.lower() in dl["error"].lower(), what
        assert audit(pg_writer, run, ref)["outcome"] == "dead_letter", what


def test_a_refused_partition_mark_fails_the_batch_clearly(writer: StoreWriter) -> None:
    """Marks come from the job's settings, not from the data: no isolation, a clear error."""
    mark = PartitionMark(consumer_group="g\ud800", topic="t", partition=0, next_offset=1)
    with pytest.raises(StoreWriteError, match="refused a partition mark") as caught:
        writer.write(WriteBatch(run_id="r", results=[result("a", 1)], marks=[mark]))
    assert not isinstance(caught.value, StoreUnavailableError)
    assert rows(writer, ClassificationRow) == 0
