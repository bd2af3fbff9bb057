"""Kafka's side of `docstream replay`: finding the original bytes of dead-lettered records, and
sending them back to a topic marked as replays.

Originals come from the dead-letter topic `<topic>.dlq` (its headers `dlq.topic`,
`dlq.partition`, `dlq.offset` link a copy back to its original position), else from the
source topic itself while retention still holds the record. A replayed message carries the
header `docstream.replay_of` = the original position ("kafka:TOPIC:PARTITION:OFFSET"), which
the streaming job passes on, so that a success resolves the original dead letter.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from .admin import CLIENT_ID, topic_partitions
from .dlq import dlq_topic
from .errors import StreamingError
from .producer import PostProducer, ProduceStats

log = logging.getLogger(__name__)

REPLAY_HEADER = "docstream.replay_of"
KafkaRef = tuple[str, int, int]  # topic, partition, offset


@dataclass(frozen=True, slots=True)
class Original:
    """The bytes of a record as it first arrived, and where they were found."""

    key: bytes | None
    value: bytes
    found_in: str  # "dlq" or "topic"


def ref_of(topic: str, partition: int, offset: int) -> str:
    """The position string the store uses for a Kafka input.

    Example:
        >>> ref_of("posts", 2, 17)
        'kafka:posts:2:17'
    """
    return f"kafka:{topic}:{partition}:{offset}"


def _consumer(bootstrap: str) -> KafkaConsumer:
    try:
        return KafkaConsumer(bootstrap_servers=bootstrap, client_id=f"{CLIENT_ID}-replay",
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    except KafkaError as e:
        raise StreamingError(f"cannot reach Kafka at {bootstrap} to find dead-lettered "
                             f"originals: {e.__class__.__name__}: {e}") from e


def _read_to_end(consumer: KafkaConsumer, tps: list[TopicPartition]) -> Iterable[object]:
    ends = consumer.end_offsets(tps)
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    left = {tp for tp in tps if ends.get(tp, 0) > consumer.position(tp)}
    while left:
        polled = consumer.poll(timeout_ms=5000)
        if not polled:
            break
        for tp, records in polled.items():
            yield from records
            if consumer.position(tp) >= ends.get(tp, 0):
                left.discard(tp)


def find_originals(bootstrap: str, wanted: Iterable[KafkaRef]) -> dict[KafkaRef, Original]:
    """The original bytes of each wanted (topic, partition, offset): from `<topic>.dlq` first,
    else from the topic itself. Refs found nowhere are missing from the result."""
    wanted = set(wanted)
    found: dict[KafkaRef, Original] = {}
    if not wanted:
        return found
    consumer = _consumer(bootstrap)
    try:
        for topic in sorted({t for t, _, _ in wanted}):
            dlq = dlq_topic(topic)
            try:
                parts = topic_partitions(bootstrap, [dlq])
            except StreamingError:
                parts = []
            for record in _read_to_end(consumer, [TopicPartition(t, p) for t, p in parts]):
                h = {k: (v or b"").decode("utf-8", "replace")
                     for k, v in (record.headers or ())}  # type: ignore[attr-defined]
                value = record.value or b""  # type: ignore[attr-defined]
                if h.get("dlq.sha256") not in (None, hashlib.sha256(value).hexdigest()):
                    continue  # a shortened copy (oversize input): the topic may hold it all
                with contextlib.suppress(KeyError, ValueError):
                    ref = (h["dlq.topic"], int(h["dlq.partition"]), int(h["dlq.offset"]))
                    if ref in wanted and ref not in found:
                        found[ref] = Original(record.key, value, "dlq")  # type: ignore[attr-defined]
        # Still missing: read the source topic at those offsets, if retention kept them.
        for ref in sorted(wanted - found.keys()):
            topic, partition, offset = ref
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, offset)
            for record in consumer.poll(timeout_ms=5000, max_records=1).get(tp, []):
                if record.offset == offset:
                    found[ref] = Original(record.key, record.value or b"", "topic")
    except KafkaError as e:
        raise StreamingError(f"reading dead-lettered originals from Kafka at {bootstrap} "
                             f"failed: {e.__class__.__name__}: {e}") from e
    finally:
        with contextlib.suppress(Exception):  # closing on the way out
            consumer.close()
    return found


def publish_replays(bootstrap: str, topic: str,
                    items: Mapping[str, tuple[bytes | None, bytes]]) -> ProduceStats:
    """Send each original (key, value) to `topic` with the header naming the position it
    replays; waits for every acknowledgement."""
    producer = PostProducer(bootstrap, topic)
    stats = ProduceStats()
    try:
        for ref, (key, value) in items.items():
            producer.send(value, key, headers=[(REPLAY_HEADER, ref.encode())])
        producer.flush(stats)
    finally:
        producer.close()
    return stats
