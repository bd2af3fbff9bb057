"""The streaming job end to end: real Kafka broker, real PostgreSQL, `docstream run` as a
subprocess in its own process group (kill -9 hits Python and Prism alike). Service restarts
(PostgreSQL twice, the broker once) are in test_stream_outages.py."""

from __future__ import annotations

import random
import signal
import threading
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, TopicPartition

from docstream.model.bundled import bundled_model_dir
from docstream.privacy.redact import stored_payload
from docstream.streaming.admin import topic_partitions
from tests.stream_helpers import (
    StreamJob,
    count_dead,
    count_results,
    make_bad,
    make_posts,
    publish,
    rows,
    scalar,
    wait_for,
)

START_S = 120  # a job's start (imports, Prism) plus slack on a busy 2-core machine


def assert_exact(db_url: str, ids: set[str], group: str) -> None:
    """Every posted id has exactly one row; the audit log never recorded a position twice."""
    got = [r[0] for r in rows(db_url, "select id from classifications")]
    assert len(got) == len(set(got))
    missing, extra = ids - set(got), set(got) - ids
    assert not missing and not extra, (sorted(missing)[:5], sorted(extra)[:5])
    assert scalar(db_url, "select count(*) - count(distinct (run_id, position)) from audit_log"
                  ) == 0
    assert scalar(db_url, "select count(*) from audit_log where run_id like :r",
                  r=f"stream-{group}-%") == len(ids) + count_dead(db_url)


def stored_positions(db_url: str, group: str) -> dict[tuple[str, int], int]:
    return {(t, p): o for t, p, o in rows(
        db_url, "select topic, partition, next_offset from stream_offsets "
        "where consumer_group = :g", g=group)}


def end_offsets(bootstrap: str, topic: str) -> dict[tuple[str, int], int]:
    c = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(t, p) for t, p in topic_partitions(bootstrap, [topic])]
        return {(tp.topic, tp.partition): o for tp, o in c.end_offsets(tps).items()}
    finally:
        c.close()


def stop_clean(job: StreamJob, sig: int = signal.SIGTERM, group: bool = False) -> str:
    rc = job.stop(sig=sig, group=group)
    out = job.output()
    assert rc == 0, out[-4000:]
    assert "run stream-" in out, out[-4000:]
    return out


def test_real_model_2000_posts_exactly_once(
    kafka_bootstrap: str, kafka_topic: Callable[..., str], pg_url: str,
    stream_jobs: Callable[..., StreamJob],
) -> None:
    """(a) 2,000 posts through a 3-partition topic with the bundled model: 2,000 rows."""
    if not (bundled_model_dir() / "manifest.json").is_file():
        pytest.fail(f"the bundled model is missing at {bundled_model_dir()}")
    topic = kafka_topic(3)
    posts = make_posts(2000, "a")
    publish(kafka_bootstrap, topic, posts)
    job = stream_jobs(kafka_bootstrap, topic, "ga", pg_url, model=None)  # default: bundled
    wait_for(lambda: count_results(pg_url) >= 2000 or not job.alive(), START_S + 120,
             "2,000 results")
    out = stop_clean(job)
    assert_exact(pg_url, {k.decode() for k, _ in posts}, "ga")
    labels = {r[0] for r in rows(pg_url, "select distinct label from classifications")}
    assert labels <= {"World", "Sports", "Business", "Sci/Tech"} and len(labels) == 4
    assert stored_positions(pg_url, "ga") == end_offsets(kafka_bootstrap, topic)
    assert "classified: 2,000" in out
    # --store-text review (the default): the text of the flagged posts only, for review
    kept = dict(rows(pg_url, "select needs_review, count(*) from classifications "
                             "where text is not null group by needs_review"))
    flagged = scalar(pg_url, "select count(*) from classifications where needs_review")
    assert flagged and kept == {True: flagged}


def test_kill_9_twice_loses_and_doubles_nothing(
    kafka_bootstrap: str, kafka_topic: Callable[..., str], pg_url: str,
    stream_jobs: Callable[..., StreamJob],
) -> None:
    """(b) kill -9 the job's process group twice while 5,000 posts flow, one of the kills
    inside the store transaction (after the result rows, before the position mark)."""
    topic = kafka_topic(3)
    posts = make_posts(5000, "b", seed=2)
    producer = threading.Thread(target=publish, args=(kafka_bootstrap, topic, posts),
                                kwargs={"rate": 125.0}, daemon=True)
    producer.start()

    # 1: the writer SIGKILLs its own process group inside its 4th transaction
    first = stream_jobs(kafka_bootstrap, topic, "gb", pg_url,
                        env={"DOCSTREAM_FAULT": "after_results:4"})
    rc = first.wait(timeout=START_S + 60)
    assert rc == -signal.SIGKILL, first.tail()
    after_first = count_results(pg_url)
    assert after_first > 0, first.tail()  # three transactions were committed before it

    # 2: kill -9 from outside while it works
    second = stream_jobs(kafka_bootstrap, topic, "gb", pg_url)
    wait_for(lambda: count_results(pg_url) >= after_first + 300 or not second.alive(),
             START_S, "the second job to make progress")
    assert second.alive(), second.tail()
    second.kill_group()
    after_second = count_results(pg_url)
    assert after_second > after_first

    # 3: runs to the end
    producer.join(timeout=120)
    third = stream_jobs(kafka_bootstrap, topic, "gb", pg_url)
    wait_for(lambda: count_results(pg_url) >= 5000 or not third.alive(), START_S + 60,
             "5,000 results")
    stop_clean(third)
    assert_exact(pg_url, {k.decode() for k, _ in posts}, "gb")
    assert stored_positions(pg_url, "gb") == end_offsets(kafka_bootstrap, topic)
    assert "DOCSTREAM_FAULT=after_results:4: killing process group" in first.output()


def test_bad_messages_become_dead_letters_and_dlq_copies(
    kafka_bootstrap: str, kafka_topic: Callable[..., str], pg_url: str,
    stream_jobs: Callable[..., StreamJob],
) -> None:
    """(c) 200 bad messages among 1,000 good: 1,000 rows, 200 dead letters, 200 on .dlq."""
    topic = kafka_topic(3)
    good = make_posts(1000, "c", seed=3)
    bad = make_bad(200, "c")
    mixed: list[tuple[bytes | None, bytes]] = [*good, *((k, v) for k, v, _ in bad)]
    random.Random(4).shuffle(mixed)
    publish(kafka_bootstrap, topic, mixed)
    job = stream_jobs(kafka_bootstrap, topic, "gc", pg_url)
    wait_for(lambda: (count_results(pg_url) >= 1000 and count_dead(pg_url) >= 200)
             or not job.alive(), START_S + 60, "1,000 results and 200 dead letters")
    stop_clean(job, signal.SIGINT, group=True)  # Ctrl-C in a terminal: Prism gets it too
    assert_exact(pg_url, {k.decode() for k, _ in good}, "gc")

    dead = rows(pg_url, "select position, topic, partition, \"offset\", key, payload, reason, "
                "stage, error from dead_letters")
    assert len(dead) == 200
    reasons = {r.reason for r in dead}
    want = {"invalid_json", "invalid_utf8", "schema", "oversize", "binary", "empty_text"}
    assert reasons == want, reasons
    by_key = {k: (v, kind) for k, v, kind in bad}
    for r in dead:
        assert r.topic == topic and r.error and r.stage
        assert r.reason == by_key[r.key][1]
        assert r.payload == stored_payload(by_key[r.key][0]) or r.reason == "oversize"

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    tp = TopicPartition(f"{topic}.dlq", 0)
    consumer.assign([tp])
    copies = []
    while len(copies) < 200:
        got = consumer.poll(timeout_ms=5000).get(tp, [])
        if not got:
            break
        copies += got
    consumer.close()
    assert len(copies) == 200
    positions = set()
    for m in copies:
        h = {k: v.decode() for k, v in m.headers}
        assert h["dlq.topic"] == topic and h["dlq.reason"] == by_key[m.key][1]
        assert h["dlq.stage"] and h["dlq.error"]
        positions.add(f"kafka:{topic}:{h['dlq.partition']}:{h['dlq.offset']}")
    assert positions == {r.position for r in dead}
