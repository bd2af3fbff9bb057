"""`docstream replay`: a validation rule is fixed, the dead letters it caused are replayed from
their originals, and the counts, resolutions and audit records add up (both stores)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from docstream.cli import main
from docstream.pipelines import stages
from docstream.pipelines.batch import run_batch
from docstream.pipelines.handler import NOOP_MODEL
from docstream.pipelines.options import RunSettings
from docstream.pipelines.records import RawInput
from docstream.schemas.dead_letter import DeadLetter
from docstream.schemas.envelope import FailedRecord, WriteBatch
from docstream.schemas.position import InputPosition
from docstream.store.engine import make_engine
from docstream.store.migrate import upgrade
from docstream.store.runs import start_run
from docstream.store.writer import StoreWriter
from docstream.streaming.dlq import DeadLetterMessage, DeadLetterPublisher, dlq_topic
from docstream.streaming.replay import REPLAY_HEADER, find_originals
from tests.stream_helpers import rows, scalar

GOOD = 12
STRICT = 5  # refused by the too-strict rule, then fixed
BROKEN = 3  # invalid JSON: stays dead


def strict_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """A validation rule that is too strict: posts that mention 'quarterly' are refused."""
    real = stages.parse_raw

    def parse(raw: RawInput) -> object:
        out = real(raw)
        post = getattr(out, "post", None)
        if post is not None and "quarterly" in post.text:
            return FailedRecord(dead_letter=DeadLetter(
                position=raw.position, payload=raw.payload, key=raw.key, doc_id=post.id,
                stage="validate", reason="strict_rule",
                error="mentions 'quarterly' (a rule that was too strict)"),
                input_sha256=out.sha256, replay_of=raw.replay_of)
        return out

    monkeypatch.setattr(stages, "parse_raw", parse)


def write_posts(path: Path) -> None:
    lines = [json.dumps({"id": f"g{i}", "text": f"Match {i} ended in a draw."})
             for i in range(GOOD)]
    lines += [json.dumps({"id": f"s{i}", "text": f"The quarterly report {i} beat forecasts."})
              for i in range(STRICT)]
    lines += ['{"id": "b' + str(i) + '", "text": ' for i in range(BROKEN)]
    path.write_text("\n".join(lines) + "\n")


def test_fixed_rule_then_replay_resolves_and_audits(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = tmp_path / "posts.jsonl"
    write_posts(src)
    with monkeypatch.context() as m:
        strict_rule(m)
        first = run_batch(RunSettings(sources=[str(src)], sink=db_url, model_dir=NOOP_MODEL,
                                      run_id="first", progress=False))
    assert (first.classified, first.dead_letters) == (GOOD, STRICT + BROKEN)

    # The rule is fixed (the monkeypatch is gone): replay only what it refused.
    assert main(["replay", "--db", db_url, "--model", "noop", "--reason", "strict_rule",
                 "--run-id", "replay-1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["selected"] == STRICT and report["found"] == STRICT
    assert report["classified"] == STRICT and report["still_dead"] == 0
    assert scalar(db_url, "select count(*) from classifications") == GOOD + STRICT
    resolved = rows(db_url, "select position, resolved_by from dead_letters "
                    "where resolved_at is not null")
    assert len(resolved) == STRICT and {r.resolved_by for r in resolved} == {"replay-1"}
    audit = rows(db_url, "select position, replay_of, outcome from audit_log "
                 "where run_id = 'replay-1'")
    assert len(audit) == STRICT
    assert all(a.outcome == "classified" and a.replay_of == a.position for a in audit)
    # dead-letter rows are kept (resolved), not deleted
    assert scalar(db_url, "select count(*) from dead_letters") == STRICT + BROKEN

    # Replaying everything still open: the broken JSON fails again and stays open.
    assert main(["replay", "--db", db_url, "--model", "noop", "--run-id", "replay-2",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["selected"] == BROKEN and report["classified"] == 0
    assert report["still_dead"] == BROKEN
    assert scalar(db_url, "select count(*) from dead_letters where resolved_at is null") == BROKEN
    assert scalar(db_url, 'select max("count") from dead_letters') == 2


def test_an_edited_source_line_is_not_replayed(sqlite_url: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "posts.jsonl"
    write_posts(src)
    with monkeypatch.context() as m:
        strict_rule(m)
        run_batch(RunSettings(sources=[str(src)], sink=sqlite_url, model_dir=NOOP_MODEL,
                              run_id="first", progress=False))
    src.write_text(src.read_text().replace("quarterly report 0", "quarterly REPORT 0"))
    out = tmp_path / "originals.jsonl"
    assert main(["replay", "--db", sqlite_url, "--reason", "strict_rule", "--out", str(out),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["found"] == STRICT - 1
    assert report["not_found"] == {"file line changed since": 1}
    assert len(out.read_bytes().splitlines()) == STRICT - 1


def test_kafka_originals_come_from_the_dlq_topic_and_replay_in_place(
    kafka_bootstrap: str, kafka_topic: Callable[..., str], sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Dead letters of a stream (written here directly): their originals are found through
    the .dlq headers, replayed at their Kafka positions, and published with the header."""
    topic = kafka_topic(1)
    engine = make_engine(sqlite_url)
    upgrade(engine)
    start_run(engine, "stream-g", f"kafka://{kafka_bootstrap}/{topic}?group=g", "noop")
    originals = {i: json.dumps({"id": f"k{i}", "text": f"Rain is due on day {i}."}).encode()
                 for i in range(4)}
    failures = [FailedRecord(dead_letter=DeadLetter(
        position=InputPosition(kind="kafka", topic=topic, partition=0, offset=i),
        payload=b"<redacted>", doc_id=f"k{i}", stage="validate", reason="strict_rule",
        error="too strict"), input_sha256="0" * 64) for i in originals]
    StoreWriter(engine).write(WriteBatch(run_id="stream-g", failures=failures))
    engine.dispose()
    publisher = DeadLetterPublisher(kafka_bootstrap)
    publisher.publish(DeadLetterMessage(topic=topic, partition=0, offset=i, key=None, value=v,
                                        reason="strict_rule", stage="validate", error="x")
                      for i, v in originals.items())
    publisher.close()

    found = find_originals(kafka_bootstrap, {(topic, 0, i) for i in originals})
    assert {ref[2]: o.value for ref, o in found.items()} == originals
    assert {o.found_in for o in found.values()} == {"dlq"}
    assert dlq_topic(topic) == f"{topic}.dlq"

    target = kafka_topic(1)
    assert main(["replay", "--db", sqlite_url, "--to", f"kafka://{kafka_bootstrap}/{target}",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["replayed"] == 4
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    tp = TopicPartition(target, 0)
    consumer.assign([tp])
    got = consumer.poll(timeout_ms=10_000).get(tp, [])
    consumer.close()
    assert sorted(dict(m.headers)[REPLAY_HEADER].decode() for m in got) == sorted(
        f"kafka:{topic}:0:{i}" for i in originals)

    assert main(["replay", "--db", sqlite_url, "--model", "noop", "--run-id", "r",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["classified"] == 4
    assert scalar(sqlite_url, "select count(*) from dead_letters where resolved_by = 'r'") == 4
