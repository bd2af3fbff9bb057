"""One Fetch request for one partition, answered as raw record-batch bytes (nothing decoded).

`KafkaConsumer.poll` decodes what it fetches and, when a batch cannot be decoded, raises
without saying which offsets it could not read. `fetch_raw` asks the partition's leader for
the same bytes over the consumer's own connection, so that streaming.unreadable can read the
batch headers (offsets, codec, CRC) without decompressing anything.

kafka-python has no public call for this: it uses the consumer's connection manager
(`KafkaConsumer._manager`, kafka-python 3.0.x, pinned `<3.1` in pyproject.toml). If a
kafka-python upgrade moves it, `fetch_raw` raises StreamingError naming the cause, and
tests/streaming/test_unreadable.py fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import kafka.errors as Errors
from kafka import KafkaConsumer, TopicPartition
from kafka.protocol.consumer import FetchRequest

from .errors import StreamingError

MAX_FETCH_VERSION = 12  # topic names (v13+ wants topic ids), as kafka-python's own fetcher


@dataclass(frozen=True, slots=True)
class RawFetch:
    """The leader's answer for one partition from `offset` on.

    `aborted` holds the (producer id, first offset) of aborted transactions in the range
    (read_committed only); `stable_end` is the offset below which the fetch could return
    data: the last stable offset under read_committed, the high watermark otherwise.
    """

    offset: int
    records: bytes
    max_bytes: int
    stable_end: int
    aborted: list[tuple[int, int]] = field(default_factory=list)


def fetch_raw(consumer: KafkaConsumer, tp: TopicPartition, offset: int, *, max_bytes: int,
              read_committed: bool, timeout_ms: int) -> RawFetch:
    """The raw record-batch bytes of `tp` from `offset` (at most `max_bytes`).

    Raises:
        KafkaError: the broker is away, not the leader, or answered with an error (the
            caller treats it as transient and tries again later).
        StreamingError: kafka-python's internals are not what this module was written for.
    """
    try:
        manager = consumer._manager  # no public API for raw fetches (see the module doc)
        leader = manager.cluster.leader_for_partition(tp)
        if leader is None or leader < 0:
            consumer.partitions_for_topic(tp.topic)  # refreshes the topic's metadata
            leader = manager.cluster.leader_for_partition(tp)
        if leader is None or leader < 0:
            raise Errors.LeaderNotAvailableError(f"no leader known for {tp.topic}/{tp.partition}")
        isolation = 1 if read_committed else 0
        request = FetchRequest(
            max_wait_ms=0, min_bytes=0, max_bytes=max_bytes, isolation_level=isolation,
            topics=[FetchRequest.FetchTopic(topic=tp.topic, partitions=[
                FetchRequest.FetchTopic.FetchPartition(
                    partition=tp.partition, fetch_offset=offset, partition_max_bytes=max_bytes,
                    current_leader_epoch=-1, last_fetched_epoch=-1)])],
            min_version=FetchRequest.min_version_for_isolation_level(isolation),
            max_version=MAX_FETCH_VERSION)

        async def send() -> Any:
            future = manager.send(request, node_id=leader, request_timeout_ms=timeout_ms)
            return await manager.wait_for(future, timeout_ms)

        response = manager.run(send)
    except (AttributeError, TypeError) as e:
        raise StreamingError(
            f"{tp.topic}/{tp.partition}: cannot fetch raw record batches at offset {offset} to "
            f"find an unreadable batch ({e.__class__.__name__}: {e}): this kafka-python "
            "version's internals differ from 3.0.x; pin kafka-python to 3.0.x") from e
    for topic in response.responses:
        for part in topic.partitions:
            if topic.topic != tp.topic or part.partition_index != tp.partition:
                continue
            error = Errors.for_code(part.error_code)
            if error is not Errors.NoError:
                raise error(f"raw fetch of {tp.topic}/{tp.partition} at offset {offset}")
            stable = part.last_stable_offset if read_committed else part.high_watermark
            if stable is None or stable < 0:
                stable = part.high_watermark
            return RawFetch(
                offset=offset, records=bytes(part.records or b""), max_bytes=max_bytes,
                stable_end=int(stable),
                aborted=[(a.producer_id, a.first_offset)
                         for a in (part.aborted_transactions or ())])
    raise Errors.KafkaError(f"raw fetch of {tp.topic}/{tp.partition} at offset {offset}: the "
                            "broker's answer did not name the partition")
