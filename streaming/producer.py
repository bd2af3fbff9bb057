"""Publish JSON Lines files to a topic, one message per line, keyed by the post's id.

Lines are sent as the raw bytes they are (a line that is not JSON, or has no id, is sent
unkeyed and unchanged), so the job's dead-lettering can be shown with real bad input.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from kafka import KafkaProducer
from kafka.errors import KafkaError

from .admin import CLIENT_ID
from .errors import StreamingError

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 16 << 20  # read at most this much of one line; the broker refuses far less


def key_of(line: bytes) -> bytes | None:
    """The post id as the message key, or None when the line has none.

    Example:
        >>> key_of(b'{"id": "p1", "text": "hi"}'), key_of(b'not json')
        (b'p1', None)
    """
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(obj, dict) and isinstance(obj.get("id"), str) and obj["id"]:
        return obj["id"].encode("utf-8")
    return None


def iter_lines(path: str) -> Iterator[bytes]:
    """Non-blank lines of a file as raw bytes, without the line end."""
    with open(path, "rb") as f:
        while True:
            line = f.readline(MAX_LINE_BYTES)
            if not line:
                return
            body = line.rstrip(b"\r\n")
            if body.strip():
                yield body


@dataclass
class ProduceStats:
    sent: int = 0
    unkeyed: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"sent": self.sent, "unkeyed": self.unkeyed, "failed": self.failed,
                "bytes": self.bytes, "seconds": round(self.seconds, 3),
                "msgs_per_s": round(self.sent / self.seconds, 1) if self.seconds else 0.0,
                "errors": self.errors[:5]}


class PostProducer:
    """A keyed, idempotent producer for one topic."""

    def __init__(self, bootstrap: str, topic: str, **config: object) -> None:
        self.topic = topic
        try:
            self._producer = KafkaProducer(**{
                "bootstrap_servers": bootstrap, "client_id": f"{CLIENT_ID}-produce",
                "enable_idempotence": True, "acks": "all", "linger_ms": 10,
                "max_request_size": 4 << 20, **config})
        except KafkaError as e:
            raise StreamingError(f"cannot reach Kafka at {bootstrap}: {e.__class__.__name__}: "
                                 f"{e}; is the broker running?") from e
        self._pending: list[tuple[int, object]] = []

    def send(self, value: bytes, key: bytes | None = None, *,
             headers: list[tuple[str, bytes]] | None = None) -> None:
        self._pending.append((len(value), self._producer.send(self.topic, key=key, value=value,
                                                              headers=headers)))

    def flush(self, stats: ProduceStats) -> None:
        self._producer.flush()
        for size, fut in self._pending:
            try:
                fut.get(timeout=0)  # type: ignore[attr-defined]
                stats.sent += 1
                stats.bytes += size
            except KafkaError as e:
                stats.failed += 1
                stats.errors.append(f"{e.__class__.__name__}: {e}")
        self._pending = []

    def close(self) -> None:
        self._producer.close(timeout=10)


def produce_lines(producer: PostProducer, lines: Iterable[bytes], *,
                  rate: float | None = None, flush_every: int = 5000) -> ProduceStats:
    """Send `lines` (at most `rate` per second when given) and wait for the broker's acks."""
    stats = ProduceStats()
    t0 = time.perf_counter()
    for i, line in enumerate(lines):
        if rate:
            ahead = t0 + i / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
        key = key_of(line)
        if key is None:
            stats.unkeyed += 1
        producer.send(line, key)
        if (i + 1) % flush_every == 0:
            producer.flush(stats)
    producer.flush(stats)
    stats.seconds = time.perf_counter() - t0
    return stats
