"""Property test of the writer, on SQLite and on PostgreSQL: whatever the batch holds, no
input is lost and nothing but a transient failure escapes.

Generated batches: strings from every Unicode category, surrogates (Cs) included, plus NUL,
lone surrogates, control and bidi characters, and very long strings (over every varchar
limit and PostgreSQL's btree row size) in every string field; floats anywhere a float goes
(NaN and infinities in scores and timings, which PostgreSQL's JSON refuses; `score` itself is
bounded to [0, 1] by Classification, so NaN cannot reach it); integers beyond 32 and 64 bits
in positions and counts; naive and aware datetimes; duplicate positions within a batch and
across batches; `replay_of` pointing at earlier positions; Kafka partition marks.

The property, after every `write`: it returned a WriteReport or raised StoreUnavailableError
(nothing else); every input position of the batch has exactly one audit record for the run
(at its position, or, when that cannot be stored, at `storable_position`), and is a
classification row (when the audit says classified) or a dead-letter row of this run; the
report accounts for every position; every mark has been applied.

Budget: the whole file in under 30 s on the 2-core development machine (both stores; about
11 s measured). Derandomized (reproducible), no example database. To hunt for more, run it
longer and random: `DOCSTREAM_FUZZ_SCALE=20 .venv/bin/python -m pytest -q
tests/store/test_writer_fuzz.py`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import UTC
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from docstream.schemas import Classification, DeadLetter, InputPosition, ModelRef
from docstream.schemas.classification import Entity
from docstream.schemas.dead_letter import Stage
from docstream.schemas.envelope import FailedRecord, PartitionMark, ResultRecord, WriteBatch
from docstream.store.engine import make_engine
from docstream.store.errors import StoreUnavailableError
from docstream.store.migrate import upgrade
from docstream.store.refused import storable_position
from docstream.store.tables import AuditRow, ClassificationRow, DeadLetterRow, StreamOffsetRow
from docstream.store.writer import StoreWriter, WriteReport

SCALE = int(os.environ.get("DOCSTREAM_FUZZ_SCALE", "1"))
EXAMPLES = 100  # per store


def fuzz(max_examples: int) -> Any:
    return settings(derandomize=SCALE == 1, deadline=None, max_examples=max_examples * SCALE,
                    database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------------------ strategies

any_char = st.characters(exclude_categories=())  # every category, surrogates included
odd_texts = st.sampled_from([
    "", " ", "\x00", "a\x00b", "\ud800", "\udfff", "x\udc80y", "\ud83d", "\x1b[31m", "\x7f",
    "\u202e", "\ufeff", "\u2028", "🙂", "\U0010ffff", "\\", "'; DROP TABLE x; --", "%s%%",
    "\r\n\t", "NaN",
])
long_texts = st.builds(lambda unit, n: unit * n,
                       st.sampled_from(["x", "é", "🙂", "\x00", "\udc80", "ab\x00"]),
                       st.sampled_from([17, 65, 129, 201, 257, 1025, 1500, 3000]))
plain_texts = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
texts = st.one_of(plain_texts, st.text(any_char, max_size=24), odd_texts, long_texts)
short_texts = st.one_of(st.text(any_char, max_size=8), odd_texts)
floats = st.floats()  # NaN, infinities, -0.0, subnormals, huge
float_dicts = st.dictionaries(short_texts, floats, max_size=3)
big_ints = st.one_of(st.integers(0, 100), st.sampled_from([2**31 - 1, 2**31, 2**63 - 1,
                                                           2**63, 2**70]))
datetimes = st.one_of(st.none(), st.datetimes(timezones=st.just(UTC)), st.datetimes())
SHARED = [InputPosition(kind="file", file="dup.jsonl", line=n) for n in (1, 2, 3)]
positions = st.one_of(
    st.sampled_from(SHARED),
    st.builds(InputPosition, kind=st.just("file"), file=texts, line=big_ints.map(lambda n: n + 1)),
    st.builds(InputPosition, kind=st.just("kafka"), topic=texts, partition=big_ints,
              offset=big_ints),
)
replays = st.one_of(st.none(), st.sampled_from([p.ref for p in SHARED]), texts)
models = st.builds(ModelRef, name=texts, version=short_texts, weights_sha256=texts)
entities = st.one_of(st.none(), st.lists(st.builds(
    Entity, text=texts, label=short_texts, start=big_ints, end=big_ints), max_size=2))
classifications = st.builds(
    Classification, doc_id=texts, source=texts, label=texts,
    score=st.floats(0, 1), scores=float_dicts, model=models, timings_ms=float_dicts,
    entities=entities, needs_review=st.booleans(), n_chunks=big_ints.map(lambda n: n + 1),
    n_tokens=big_ints)
results = st.builds(
    ResultRecord, result=classifications, position=positions,
    input_sha256=st.one_of(st.just("c" * 64), texts), kind=st.none() | short_texts,
    title=st.none() | texts, created_at=datetimes, replay_of=replays)
failures = st.builds(
    FailedRecord,
    dead_letter=st.builds(
        DeadLetter, position=positions, payload=st.binary(max_size=48),
        key=st.none() | st.binary(max_size=8), doc_id=st.none() | texts,
        source=st.none() | texts, stage=st.sampled_from(get_args(Stage)), reason=texts,
        error=texts),
    input_sha256=st.one_of(st.just("d" * 64), texts), timings_ms=float_dicts,
    replay_of=replays)
marks = st.builds(PartitionMark, consumer_group=st.just("g"), topic=st.just("t"),
                  partition=st.integers(0, 2), next_offset=st.integers(0, 2**62))
batches = st.builds(WriteBatch, run_id=st.just("-"), results=st.lists(results, max_size=6),
                    failures=st.lists(failures, max_size=4), marks=st.lists(marks, max_size=2))


# ------------------------------------------------------------------------------ the property


@pytest.fixture()
def fuzz_writer(db_url: str) -> Iterator[StoreWriter]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield StoreWriter(engine)
    engine.dispose()


RUNS = itertools.count()


def refs(batch: WriteBatch) -> set[str]:
    return ({r.position.ref for r in batch.results}
            | {f.dead_letter.position.ref for f in batch.failures})


def check(writer: StoreWriter, batch: WriteBatch, report: WriteReport) -> None:
    run = batch.run_id
    inputs = refs(batch)
    with writer.engine.connect() as conn:
        audits = {a.position: a for a in conn.execute(
            select(AuditRow.position, AuditRow.outcome, AuditRow.stage, AuditRow.doc_id,
                   AuditRow.source).where(AuditRow.run_id == run))}
        assert len(audits) == len(inputs)  # the unique (run, position) key: never two
        for ref in inputs:
            stored = ref if ref in audits else storable_position(ref)
            a = audits[stored]
            if a.outcome == "classified":
                row = conn.execute(select(ClassificationRow.run_id).where(
                    ClassificationRow.source == a.source, ClassificationRow.id == a.doc_id)
                ).scalar_one()
            else:
                row = conn.execute(select(DeadLetterRow.run_id).where(
                    DeadLetterRow.position == stored)).scalar_one()
            assert row == run, (ref, a.outcome)
            if ref in report.isolated_positions:
                assert (a.outcome, a.stage) == ("dead_letter", "store")
        for m in batch.marks:  # marks only move forward: at least this batch's
            assert conn.execute(select(StreamOffsetRow.next_offset).where(
                StreamOffsetRow.consumer_group == m.consumer_group,
                StreamOffsetRow.topic == m.topic, StreamOffsetRow.partition == m.partition)
            ).scalar_one() >= m.next_offset
    assert report.results + report.dead_letters == len(inputs)
    assert report.isolated == len(report.isolated_positions) <= report.dead_letters


@fuzz(EXAMPLES)
@given(batch=batches)
def test_write_never_loses_an_input(fuzz_writer: StoreWriter, batch: WriteBatch) -> None:
    batch = batch.model_copy(update={"run_id": f"fuzz-{next(RUNS)}"})
    try:
        report = fuzz_writer.write(batch)
    except StoreUnavailableError:  # allowed by the contract; a local database never is
        return
    event(f"records: {len(refs(batch))}, isolated: {min(report.isolated, 3)}+")
    check(fuzz_writer, batch, report)
