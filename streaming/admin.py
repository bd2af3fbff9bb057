"""Topic and offset look-ups: partitions, beginning/end offsets, topic creation, group commits."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Mapping

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from .errors import StreamingError

log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]
CLIENT_ID = "docstream"
_UNKNOWN_TOPIC = 3


def _admin(bootstrap: str, timeout_s: float) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(bootstrap_servers=bootstrap, client_id=f"{CLIENT_ID}-admin",
                                request_timeout_ms=int(timeout_s * 1000),
                                bootstrap_timeout_ms=int(timeout_s * 1000))
    except KafkaError as e:
        raise StreamingError(f"cannot reach Kafka at {bootstrap}: {e.__class__.__name__}: {e}; "
                             "is the broker running (scripts/dev-services start kafka)?") from e


def offsets_consumer(bootstrap: str, timeout_s: float = 30.0, **config: object) -> KafkaConsumer:
    """A group-less consumer for offset look-ups (no assignment, no commits)."""
    try:
        return KafkaConsumer(bootstrap_servers=bootstrap, client_id=f"{CLIENT_ID}-offsets",
                             enable_auto_commit=False, request_timeout_ms=int(timeout_s * 1000),
                             **config)
    except KafkaError as e:
        raise StreamingError(f"cannot reach Kafka at {bootstrap}: {e.__class__.__name__}: {e}; "
                             "is the broker running (scripts/dev-services start kafka)?") from e


def topic_partitions(bootstrap: str, topics: Iterable[str], timeout_s: float = 30.0
                     ) -> list[PartitionKey]:
    """Every (topic, partition) of `topics`, sorted; a missing topic is an error."""
    topics = list(topics)
    admin = _admin(bootstrap, timeout_s)
    try:
        described = admin.describe_topics(topics)
    except KafkaError as e:
        raise StreamingError(f"cannot describe topics {topics} on {bootstrap}: {e}") from e
    finally:
        admin.close()
    out: list[PartitionKey] = []
    for d in described:
        if d["error_code"] == _UNKNOWN_TOPIC or not d["partitions"]:
            raise StreamingError(
                f"topic {d['name']!r} does not exist on {bootstrap}; create it, e.g. "
                f"`docstream produce --to kafka://{bootstrap}/{d['name']} --partitions 3 FILE`")
        if d["error_code"]:
            raise StreamingError(f"topic {d['name']!r} on {bootstrap}: error {d['error_code']}")
        out += [(d["name"], p["partition_index"]) for p in d["partitions"]]
    return sorted(out)


def ensure_topic(bootstrap: str, topic: str, partitions: int = 3, replication: int = 1,
                 timeout_s: float = 30.0) -> bool:
    """Create `topic` unless it exists; True when this call created it."""
    if partitions < 1:
        raise StreamingError(f"--partitions must be >= 1, got {partitions}")
    admin = _admin(bootstrap, timeout_s)
    try:
        existing = set(admin.list_topics())
        if topic in existing:
            return False
        try:
            admin.create_topics([NewTopic(topic, partitions, replication)],
                                timeout_ms=int(timeout_s * 1000))
        except TopicAlreadyExistsError:
            return False
        except KafkaError as e:
            raise StreamingError(f"cannot create topic {topic!r} on {bootstrap}: {e}") from e
        deadline = time.monotonic() + timeout_s
        while topic not in set(admin.list_topics()):  # metadata propagates asynchronously
            if time.monotonic() > deadline:
                raise StreamingError(f"topic {topic!r} was created but never appeared")
            time.sleep(0.1)
        log.info("created topic %s with %d partition(s)", topic, partitions)
        return True
    finally:
        admin.close()


def _tps(keys: Iterable[PartitionKey]) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t, p in keys]


def beginning_offsets(bootstrap: str, keys: Iterable[PartitionKey], timeout_s: float = 30.0
                      ) -> dict[PartitionKey, int]:
    consumer = offsets_consumer(bootstrap, timeout_s)
    try:
        got = consumer.beginning_offsets(_tps(keys), timeout_ms=int(timeout_s * 1000))
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): int(o) for tp, o in got.items()}


def end_offsets(consumer: KafkaConsumer, keys: Iterable[PartitionKey], timeout_s: float = 10.0
                ) -> dict[PartitionKey, int]:
    got = consumer.end_offsets(_tps(keys), timeout_ms=int(timeout_s * 1000))
    return {(tp.topic, tp.partition): int(o) for tp, o in got.items()}


def resolve_start_offsets(bootstrap: str, topics: Iterable[str],
                          stored: Mapping[PartitionKey, int] | None = None,
                          timeout_s: float = 30.0) -> dict[PartitionKey, int]:
    """Where each partition of `topics` starts: `stored` if given, else its beginning offset.

    A stored offset below the beginning (retention deleted those records) starts at the
    beginning, with a warning: those records can no longer be read.
    """
    stored = dict(stored or {})
    keys = topic_partitions(bootstrap, topics, timeout_s)
    begin = beginning_offsets(bootstrap, keys, timeout_s)
    out: dict[PartitionKey, int] = {}
    for key in keys:
        first = begin.get(key, 0)
        pos = stored.get(key)
        if pos is None:
            out[key] = first
        elif pos < first:
            log.warning("%s/%d: stored position %d is below the first retained offset %d; "
                        "records %d..%d were deleted before they were read",
                        *key, pos, first, pos, first - 1)
            out[key] = first
        else:
            out[key] = pos
    return out


class GroupCommitter:
    """Commits positions to a Kafka consumer group, for lag tools only (not for recovery)."""

    def __init__(self, bootstrap: str, group: str, timeout_s: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.timeout_s = timeout_s
        self._consumer: KafkaConsumer | None = None

    def commit(self, positions: Mapping[PartitionKey, int]) -> bool:
        if not positions:
            return True
        try:
            if self._consumer is None:
                self._consumer = KafkaConsumer(
                    bootstrap_servers=self.bootstrap, group_id=self.group,
                    client_id=f"{CLIENT_ID}-commit", enable_auto_commit=False,
                    request_timeout_ms=int(self.timeout_s * 1000))
            self._consumer.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                                   for (t, p), o in positions.items()})
            return True
        except Exception as e:  # informational only: never stop the job for it
            log.debug("committing positions to group %s failed: %s", self.group, e)
            self.close()
            return False

    def close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):  # closing a broken client
                self._consumer.close(autocommit=False)
            self._consumer = None
