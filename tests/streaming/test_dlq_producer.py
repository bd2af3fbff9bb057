"""Dead-letter copies and the producer, on the real broker."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from docstream.streaming.admin import ensure_topic, topic_partitions
from docstream.streaming.dlq import DeadLetterMessage, DeadLetterPublisher, dlq_topic
from docstream.streaming.errors import StreamingError
from docstream.streaming.producer import PostProducer, iter_lines, key_of, produce_lines


def read_all(bootstrap: str, topic: str) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    tps = [TopicPartition(t, p) for t, p in topic_partitions(bootstrap, [topic])]
    consumer.assign(tps)
    out = []
    while True:
        got = consumer.poll(timeout_ms=3000)
        if not got:
            break
        for records in got.values():
            out += records
    consumer.close()
    return out


def test_dead_letters_carry_reason_and_origin_in_headers(
    kafka_bootstrap: str, kafka_topic: Callable[..., str],
) -> None:
    topic = kafka_topic(1)
    ensure_topic(kafka_bootstrap, dlq_topic(topic), 1)
    pub = DeadLetterPublisher(kafka_bootstrap)
    try:
        n = pub.publish([
            DeadLetterMessage(topic, 2, 41, b"k1", b"{oops", "invalid_json", "parse",
                              "invalid JSON at line 1 column 2", (("dlq.run_id", "r"),)),
            DeadLetterMessage(topic, 0, 7, None, b"\xff", "invalid_utf8", "decode", "x" * 5000),
        ])
    finally:
        pub.close()
    assert n == 2
    got = read_all(kafka_bootstrap, f"{topic}.dlq")
    assert [m.value for m in got] == [b"{oops", b"\xff"]
    h = {k: v.decode() for k, v in got[0].headers}
    assert h == {"dlq.reason": "invalid_json", "dlq.stage": "parse",
                 "dlq.error": "invalid JSON at line 1 column 2", "dlq.topic": topic,
                 "dlq.partition": "2", "dlq.offset": "41", "dlq.run_id": "r"}
    assert got[0].key == b"k1" and got[1].key is None
    assert len(dict(got[1].headers)["dlq.error"]) == 2000  # bounded


def test_publish_nothing_needs_no_broker() -> None:
    assert DeadLetterPublisher("127.0.0.1:1").publish([]) == 0


def test_produce_keys_by_id_and_keeps_bad_lines(
    kafka_bootstrap: str, kafka_topic: Callable[..., str], tmp_path: Path,
) -> None:
    topic = kafka_topic(3)
    f = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": f"p{i}", "text": "t"}).encode() for i in range(30)]
    lines += [b"{not json", b'{"text": "no id"}', b"\xff\xfe"]
    f.write_bytes(b"\n".join(lines[:15]) + b"\n\n  \n" + b"\n".join(lines[15:]) + b"\n")
    assert list(iter_lines(str(f))) == lines  # blank lines skipped, bytes untouched
    producer = PostProducer(kafka_bootstrap, topic)
    try:
        stats = produce_lines(producer, iter_lines(str(f)))
    finally:
        producer.close()
    assert (stats.sent, stats.unkeyed, stats.failed) == (33, 3, 0)
    got = read_all(kafka_bootstrap, topic)
    assert sorted(m.value for m in got) == sorted(lines)
    for m in got:
        assert m.key == key_of(m.value)
    # same key, same partition: a post's updates stay in order
    parts = {m.key: m.partition for m in got if m.key}
    assert len(parts) == 30


def test_produce_cli_creates_the_topic(kafka_bootstrap: str, tmp_path: Path) -> None:
    import subprocess
    import sys
    import uuid

    from kafka.admin import KafkaAdminClient

    topic = f"cli-{uuid.uuid4().hex[:8]}"
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(json.dumps({"id": f"x{i}", "text": "t"}) for i in range(5)) + "\n")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "docstream.cli", "produce", "--to",
             f"kafka://{kafka_bootstrap}/{topic}", "--partitions", "2", "--json", str(f)],
            capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out["created"] and out["sent"] == 5
        assert len(topic_partitions(kafka_bootstrap, [topic])) == 2
    finally:
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        admin.delete_topics([topic])
        admin.close()


def test_unreachable_broker_is_a_clear_error() -> None:
    with pytest.raises(StreamingError, match=r"cannot reach Kafka at 127\.0\.0\.1:1"):
        ensure_topic("127.0.0.1:1", "t", 1, timeout_s=2)
