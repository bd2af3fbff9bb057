"""The audit log's hash chains (store.audit_chain, store.audit_verify), on both stores.

Each tampering an attacker with write access could try is done here by hand, with the
append-only triggers of migration 0005 out of the way (as the table's owner could: PostgreSQL
`session_replication_role = replica`, SQLite `DROP TRIGGER`), and the verifier must name it:
a field changed, a record deleted (in the middle; at the end, given the head kept outside),
a record inserted, two records swapped, the tail cut off with audit_heads reset, the chain
recomputed without the key. Replays, record isolation and concurrent writers must keep every
chain valid.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select, text, update

from docstream.privacy.redact import IdentityRedactor
from docstream.schemas import Classification, DeadLetter, InputPosition, ModelRef
from docstream.schemas.envelope import FailedRecord, ResultRecord, WriteBatch
from docstream.store.audit_chain import (
    GENESIS,
    HASHED,
    AuditHead,
    AuditKey,
    audit_key_from_env,
    canonical,
    record_hash,
    run_heads,
)
from docstream.store.audit_verify import Verification, verify
from docstream.store.engine import make_engine
from docstream.store.errors import StoreError, StoreUnavailableError
from docstream.store.migrate import upgrade
from docstream.store.tables import AuditHeadRow, AuditRow
from docstream.store.writer import StoreWriter

REF = ModelRef(name="news-topic", version="1", weights_sha256="a" * 64)
KEY = AuditKey(b"k" * 32)
AUDIT = AuditRow.__table__
HEADS = AuditHeadRow.__table__


def result(line: int, run_doc: str = "d", **changes: Any) -> ResultRecord:
    c = {"doc_id": f"{run_doc}{line}", "source": "s", "label": "Sports", "score": 0.9,
         "scores": {"Sports": 0.9, "World": 0.1}, "model": REF,
         "timings_ms": {"parse": 0.013, "infer": 1.5}}
    c.update({k: v for k, v in changes.items() if k in Classification.model_fields})
    rest = {k: v for k, v in changes.items() if k not in Classification.model_fields}
    return ResultRecord(result=Classification(**c),
                        position=InputPosition(kind="file", file="in.jsonl", line=line),
                        input_sha256="c" * 64, **rest)


def failure(line: int) -> FailedRecord:
    return FailedRecord(
        dead_letter=DeadLetter(position=InputPosition(kind="file", file="in.jsonl", line=line),
                               payload=b"{oops", stage="parse", reason="invalid_json",
                               error="invalid JSON"),
        input_sha256="d" * 64, timings_ms={"parse": 0.2})


def batch(run: str, lines: range, doc: str = "d") -> WriteBatch:
    return WriteBatch(run_id=run, results=[result(i, doc) for i in lines if i % 5],
                      failures=[failure(i) for i in lines if not i % 5])


@pytest.fixture()
def engine(db_url: str) -> Iterator[Engine]:
    e = make_engine(db_url)
    upgrade(e)
    yield e
    e.dispose()


def writer(engine: Engine, key: AuditKey | None = None) -> StoreWriter:
    """A writer without redaction (--pii-policy off): the chain does not depend on it."""
    return StoreWriter(engine, IdentityRedactor(), audit_key=key)


def records(engine: Engine, where: Any = None) -> list[Any]:
    query = select(AUDIT).order_by(AUDIT.c.seq)
    with engine.connect() as conn:
        return conn.execute(query if where is None else query.where(where)).all()


def heads(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {r.chain: r for r in conn.execute(select(HEADS))}


@contextmanager
def tampering(engine: Engine) -> Iterator[Connection]:
    """A transaction past the append-only triggers, as the table's owner could open."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            for (name,) in conn.execute(text(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                    "AND tbl_name = 'audit_log'")).all():
                conn.execute(text(f'DROP TRIGGER "{name}"'))
        yield conn


def chain_of_30(engine: Engine, key: AuditKey | None = None, run: str = "r1") -> list[Any]:
    """Three batches of one writer: one chain of 30 records."""
    w = writer(engine, key)
    for start in (1, 11, 21):
        w.write(batch(run, range(start, start + 10)))
    rows = records(engine, AUDIT.c.run_id == run)
    assert len(rows) == 30 and len({r.chain for r in rows}) == 1
    return rows


def problems(v: Verification) -> list[str]:
    return [p.line() for p in v.problems]


# -- the chain as written -----------------------------------------------------------------


def test_a_writer_chains_what_it_inserts(engine: Engine) -> None:
    rows = chain_of_30(engine)
    assert rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    assert all(record_hash(r._mapping, None) == r.hash for r in rows)
    (head,) = heads(engine).values()
    assert (head.chain, head.head_hash, head.length, head.keyed) == (
        rows[0].chain, rows[-1].hash, 30, False)
    assert rows[0].chain.startswith("r1/")
    v = verify(engine, None)
    assert v.ok and (v.records, v.chains) == (30, 1)
    assert v.summary().startswith("verified 30 records in 1 chains (unkeyed")


def test_keyed_chain_is_hmac_and_needs_the_key(engine: Engine) -> None:
    rows = chain_of_30(engine, KEY)
    assert all(r.hash == KEY.mac(canonical(r._mapping)) for r in rows)
    assert next(iter(heads(engine).values())).keyed is True
    assert verify(engine, KEY).ok
    with pytest.raises(StoreError, match=r"keyed.*DOCSTREAM_AUDIT_KEY"):
        verify(engine, None)
    wrong = verify(engine, AuditKey(b"w" * 32))
    assert len(wrong.problems) == 21  # 20 records listed, then the count of the rest
    assert "does not match its fields" in problems(wrong)[0]
    assert "10 more broken records" in problems(wrong)[-1]


def test_canonical_encoding_is_pinned() -> None:
    """Changing the encoding would break every chain already written: this is version 1."""
    assert HASHED == ("run_id", "position", "doc_id", "source", "input_sha256",
                      "model_version", "outcome", "stage", "timings_ms", "recorded_at",
                      "replay_of", "pii_policy", "pii_counts", "chain", "prev_hash")
    rec = {"run_id": "r", "position": "file:a.jsonl:1", "doc_id": None, "outcome": "classified",
           "timings_ms": {"b": 1.5, "a": 0.1 + 0.2}, "pii_counts": {"EMAIL": 2},
           "recorded_at": datetime(2026, 1, 2, 4, 4, 5, 6, tzinfo=timezone(timedelta(hours=1))),
           "chain": "r/h-1-ab", "prev_hash": GENESIS, "position_extra": "not a column"}
    expected = (b'docstream-audit-v1\n{"chain":"r/h-1-ab","outcome":"classified",'
                b'"pii_counts":{"EMAIL":2},"position":"file:a.jsonl:1","prev_hash":"'
                + GENESIS.encode() + b'","recorded_at":"2026-01-02T03:04:05.000006Z",'
                b'"run_id":"r","timings_ms":{"a":0.30000000000000004,"b":1.5}}')
    assert canonical(rec) == expected
    # naive datetimes (SQLite reads them back so) are UTC; non-ASCII is escaped
    naive = {**rec, "recorded_at": datetime(2026, 1, 2, 3, 4, 5, 6)}
    assert canonical(naive) == expected
    assert canonical({"doc_id": "é\ud800"}) == b'docstream-audit-v1\n{"doc_id":"\\u00e9\\ud800"}'
    assert record_hash(rec, None) == hashlib.sha256(expected).hexdigest()
    assert record_hash(rec, KEY) != record_hash(rec, None)
    assert record_hash({**rec, "recorded_at": rec["recorded_at"].astimezone(UTC)},
                       None) == record_hash(rec, None)


def test_the_key_from_the_environment(tmp_path: Path) -> None:
    assert audit_key_from_env({}) is None
    secret = "s3cret-audit-key-0123456789"
    key = audit_key_from_env({"DOCSTREAM_AUDIT_KEY": secret})
    assert key is not None and secret not in repr(key)
    f = tmp_path / "key"
    f.write_text(secret + "\n")
    from_file = audit_key_from_env({"DOCSTREAM_AUDIT_KEY_FILE": str(f)})
    assert from_file is not None and from_file.mac(b"m") == key.mac(b"m")  # newline dropped
    with pytest.raises(StoreError, match="both"):
        audit_key_from_env({"DOCSTREAM_AUDIT_KEY": secret, "DOCSTREAM_AUDIT_KEY_FILE": str(f)})
    with pytest.raises(StoreError, match="cannot read") as missing:
        audit_key_from_env({"DOCSTREAM_AUDIT_KEY_FILE": str(tmp_path / "nope")})
    with pytest.raises(StoreError, match="too short") as short:
        audit_key_from_env({"DOCSTREAM_AUDIT_KEY": "short"})
    assert "short" not in str(short.value).replace("too short", "")
    assert secret not in str(missing.value)


def test_the_key_is_written_nowhere(sqlite_url: str) -> None:
    secret = b"never-stored-key-0123456789abcdef"
    e = make_engine(sqlite_url)
    upgrade(e)
    chain_of_30(e, AuditKey(secret))
    e.dispose()
    db = Path(sqlite_url.removeprefix("sqlite:///"))
    stored = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert secret not in stored and secret.hex().encode() not in stored


# -- tampering ----------------------------------------------------------------------------


def test_a_changed_field_is_found(engine: Engine) -> None:
    rows = chain_of_30(engine)
    mid = rows[14]
    with tampering(engine) as conn:
        conn.execute(update(AUDIT).where(AUDIT.c.seq == mid.seq).values(outcome="dead_letter"))
    (first, *rest) = problems(verify(engine, None))
    assert first.startswith(f"seq {mid.seq} (run r1, position {mid.position}, chain {mid.chain})")
    assert "does not match its fields" in first and not rest


def test_a_deleted_middle_record_is_found(engine: Engine) -> None:
    rows = chain_of_30(engine)
    with tampering(engine) as conn:
        conn.execute(AUDIT.delete().where(AUDIT.c.seq == rows[14].seq))
    found = problems(verify(engine, None))
    assert found[0].startswith(f"seq {rows[15].seq} ")
    assert "predecessor is missing" in found[0] and f"after seq {rows[13].seq}" in found[0]
    assert "audit_heads says 30 records, the chain holds 29: records were deleted" in found[1]


def test_a_deleted_last_record_is_found_given_the_head(engine: Engine) -> None:
    rows = chain_of_30(engine)
    (kept,) = run_heads(engine, "r1")  # what the run's summary and head file hold
    assert (kept.head_hash, kept.length) == (rows[-1].hash, 30)
    with tampering(engine) as conn:
        conn.execute(AUDIT.delete().where(AUDIT.c.seq == rows[-1].seq))
    assert "its last records were deleted" in problems(verify(engine, None))[0]
    with tampering(engine) as conn:  # ... so the attacker resets the head too
        conn.execute(update(HEADS).values(head_hash=rows[-2].hash, length=29))
    assert verify(engine, None).ok  # the database alone cannot tell
    found = problems(verify(engine, None, heads=[kept]))
    assert found == [f"chain {kept.chain}: the external head says 30 records; the chain holds "
                     "29: the last 1 of them were deleted (truncated)"]
    assert "is in no chain" in problems(verify(engine, None, heads=[kept.head_hash]))[0]


def test_a_truncated_tail_with_its_head_reset_is_found_given_the_head(engine: Engine) -> None:
    rows = chain_of_30(engine, KEY)
    kept = run_heads(engine, "r1")
    with tampering(engine) as conn:
        conn.execute(AUDIT.delete().where(AUDIT.c.seq > rows[19].seq))
        conn.execute(update(HEADS).values(head_hash=rows[19].hash, length=20))
    assert verify(engine, KEY).ok
    assert "the last 10 of them were deleted" in problems(verify(engine, KEY, heads=kept))[0]


def test_an_inserted_record_is_found(engine: Engine) -> None:
    """A forged record, well hashed (no key) and linked to its predecessor, slipped in."""
    rows = chain_of_30(engine)
    forged = {**rows[9]._mapping, "position": "file:forged.jsonl:1", "prev_hash": rows[9].hash}
    forged.pop("seq")
    forged["hash"] = record_hash(forged, None)
    with tampering(engine) as conn:  # make room after record 10 (seq order), then insert
        for r in reversed(rows[10:]):
            conn.execute(update(AUDIT).where(AUDIT.c.seq == r.seq).values(seq=r.seq + 1))
        conn.execute(AUDIT.insert().values(seq=rows[9].seq + 1, **forged))
    found = problems(verify(engine, None))
    assert found[0].startswith(f"seq {rows[10].seq + 1} ")
    assert (f"its predecessor is seq {rows[9].seq}, not seq {rows[9].seq + 1} before it "
            "(a record was inserted") in found[0]


def test_a_record_appended_outside_the_writer_is_found(engine: Engine) -> None:
    rows = chain_of_30(engine)
    forged = {**rows[-1]._mapping, "position": "file:forged.jsonl:1", "prev_hash": rows[-1].hash}
    forged.pop("seq")
    forged["hash"] = record_hash(forged, None)
    with tampering(engine) as conn:
        conn.execute(AUDIT.insert().values(**forged))
    assert "1 records after its head in audit_heads" in problems(verify(engine, None))[0]


def test_a_forged_record_without_the_key_is_found(engine: Engine) -> None:
    rows = chain_of_30(engine, KEY)
    with tampering(engine) as conn:
        new = {**rows[5]._mapping, "doc_id": "other"}
        conn.execute(update(AUDIT).where(AUDIT.c.seq == rows[5].seq).values(
            doc_id="other", hash=record_hash(new, None)))
    found = problems(verify(engine, KEY))
    assert found[0].startswith(f"seq {rows[5].seq} ")
    assert "forged without the key" in found[0]
    assert f"seq {rows[6].seq} " in found[1] and "predecessor is missing" in found[1]


def test_swapped_records_are_found(engine: Engine) -> None:
    rows = chain_of_30(engine)
    a, b = rows[11], rows[12]
    with tampering(engine) as conn:  # swap their seq (same as swapping all their contents)
        conn.execute(update(AUDIT).where(AUDIT.c.seq == a.seq).values(seq=-1))
        conn.execute(update(AUDIT).where(AUDIT.c.seq == b.seq).values(seq=a.seq))
        conn.execute(update(AUDIT).where(AUDIT.c.seq == -1).values(seq=b.seq))
    found = problems(verify(engine, None))
    assert found[0].startswith(f"seq {a.seq} (run r1, position {b.position}")
    assert f"its predecessor is seq {b.seq}, which comes after it (records were reordered)" \
        in found[0]


def test_a_chain_recomputed_without_the_key_is_found(engine: Engine) -> None:
    """Someone with write access but not the key changes a record and rewrites the whole
    chain, hashes and head, as plain SHA-256."""
    rows = chain_of_30(engine, KEY)
    kept = run_heads(engine, "r1")
    with tampering(engine) as conn:
        prev = GENESIS
        for r in rows:
            rec = {**r._mapping, "prev_hash": prev}
            if r.seq == rows[3].seq:
                rec["outcome"] = "dead_letter"
            prev = record_hash(rec, None)
            conn.execute(update(AUDIT).where(AUDIT.c.seq == r.seq).values(
                outcome=rec["outcome"], prev_hash=rec["prev_hash"], hash=prev))
        conn.execute(update(HEADS).values(head_hash=prev, keyed=False))
    assert verify(engine, None).ok  # consistent as a plain chain: the key is what tells
    assert "unkeyed (plain SHA-256) although a key is set" in problems(verify(engine, KEY))[0]
    allowed = problems(verify(engine, KEY, allow_unkeyed=True, heads=kept))
    assert "is not the external head" in allowed[0] and "says keyed" in allowed[1]
    with tampering(engine) as conn:  # the head left keyed: every HMAC fails
        conn.execute(update(HEADS).values(keyed=True))
    assert "forged without the key" in problems(verify(engine, KEY))[0]


def test_unchained_records(engine: Engine) -> None:
    """Records older than the chains (before migration 0004) are counted, not verified; one
    without a chain among chained ones is a problem."""
    old = {"run_id": "old", "position": "p", "input_sha256": "c" * 64, "outcome": "classified",
           "timings_ms": {}, "recorded_at": datetime.now(UTC)}
    with engine.begin() as conn:
        conn.execute(AUDIT.insert().values(**old))
    chain_of_30(engine)
    v = verify(engine, None)
    assert v.ok and v.older == 1 and "1 older records predate the chains" in v.summary()
    with engine.begin() as conn:
        conn.execute(AUDIT.insert().values(**{**old, "position": "late"}))
    assert "is in no chain (chain is NULL)" in problems(verify(engine, None))[0]
    assert verify(engine, None, run_id="r1").ok  # not a record of that run


# -- replays, isolation, concurrency ------------------------------------------------------


def test_replays_do_not_fork_the_chain(engine: Engine) -> None:
    w = writer(engine)
    w.write(batch("r1", range(1, 21)))
    w.write(batch("r1", range(1, 21)))  # the same batch again, same run: nothing new
    again = writer(engine)  # a rerun with the same run id: a new writer, nothing new
    again.write(batch("r1", range(1, 21)))
    assert len(heads(engine)) == 1
    again.write(batch("r1", range(11, 31)))  # half old, half new
    rows = records(engine)
    assert len(rows) == 30
    by_chain = {h.chain: h.length for h in heads(engine).values()}
    assert sorted(by_chain.values()) == [10, 20]
    v = verify(engine, None)
    assert v.ok and (v.records, v.chains) == (30, 2)


def test_isolated_records_keep_the_chain_valid(engine: Engine) -> None:
    """Halves tried in savepoints and rolled back must not advance the head."""
    w = writer(engine, KEY)
    w.write(batch("r1", range(1, 11)))
    bad = [result(i, title="a lone surrogate \ud800") for i in (14, 23)]
    recs = [result(i) for i in range(11, 31) if i not in (14, 23)] + bad
    report = w.write(WriteBatch(run_id="r1", results=recs, failures=[failure(40)]))
    assert report.isolated == 2
    w.write(batch("r1", range(41, 51)))
    rows = records(engine)
    assert len(rows) == 10 + 21 + 10
    (head,) = heads(engine).values()
    assert (head.length, head.head_hash) == (41, rows[-1].hash)
    assert {r.stage for r in rows if r.position.endswith((":14", ":23"))} == {"store"}
    v = verify(engine, KEY)
    assert v.ok and v.records == 41


def test_two_writers_at_once(engine: Engine) -> None:
    """Two writers (threads), interleaving on one database, same run and others; and one
    writer shared by two threads without a lock: every chain stays linear."""
    shared = writer(engine, KEY)
    jobs = [(writer(engine, KEY), "r1", "a"), (writer(engine, KEY), "r1", "b"),
            (writer(engine, KEY), "r2", "c"), (shared, "r3", "d"), (shared, "r3", "e")]
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))

    def work(w: StoreWriter, run: str, doc: str, offset: int) -> None:
        try:
            start.wait()
            for i in range(8):
                lines = range(offset + 10 * i + 1, offset + 10 * i + 11)
                for _ in range(20):
                    try:
                        w.write(batch(run, lines, doc))
                        break
                    except StoreUnavailableError:  # a deadlock or busy database: retry
                        continue
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(*job, 1000 * n))
               for n, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(records(engine)) == 5 * 80
    lengths = sorted(h.length for h in heads(engine).values())
    assert lengths == [80, 80, 80, 160]  # the shared writer: one chain for r3
    v = verify(engine, KEY)
    assert v.ok and (v.records, v.chains) == (400, 4)
    assert len(run_heads(engine, "r1")) == 2 and len(run_heads(engine, "r3")) == 1


def test_a_record_another_writer_inserted_meanwhile_rolls_the_batch_back(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two writers record the same (run, position) at once: the one whose check came first
    fails its insert; its batch rolls back whole (StoreUnavailableError) and its retry
    chains only what is new."""
    late, first = writer(engine), writer(engine)
    first.write(batch("r1", range(5, 8)))
    monkeypatch.setattr(late.audit_chain, "_recorded", lambda *a: set())  # checked too early
    with pytest.raises(StoreUnavailableError, match="another writer recorded"):
        late.write(batch("r1", range(1, 11)))
    assert len(records(engine)) == 3 and len(heads(engine)) == 1
    monkeypatch.undo()
    late.write(batch("r1", range(1, 11)))
    assert sorted(h.length for h in heads(engine).values()) == [3, 7]
    assert verify(engine, None).ok


def test_external_heads_of_a_run(engine: Engine) -> None:
    chain_of_30(engine, run="r1")
    writer(engine).write(batch("r2", range(1, 6)))
    (r1,) = run_heads(engine, "r1")
    assert isinstance(r1, AuditHead) and r1.length == 30
    before = datetime.now(UTC)  # the streaming job's heads: those written since it started
    assert run_heads(engine, "r1", since=before) == []
    writer(engine).write(batch("r1", range(31, 33)))
    assert [h.length for h in run_heads(engine, "r1", since=before)] == [2]
    v = verify(engine, None, run_id="r2", heads=[r1])
    assert v.ok and v.chains == 2 and v.external == 1
    assert verify(engine, None, run_id="r2").chains == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(AUDIT)).scalar_one() == 37
