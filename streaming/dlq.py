"""Dead letters onto `<topic>.dlq`: the message bytes plus why, where and when, in headers.

At-least-once: `publish` returns only once the broker acknowledged every message (idempotent
producer, acks=all), so a caller that records its progress afterwards never loses a copy; a
crash between the two republishes it on restart (a duplicate on the dead-letter topic).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from kafka import KafkaProducer
from kafka.errors import KafkaError

from .admin import CLIENT_ID
from .errors import StreamingError

log = logging.getLogger(__name__)

DLQ_SUFFIX = ".dlq"
MAX_ERROR_HEADER = 2000
PRODUCER_CONFIG = {
    "enable_idempotence": True,
    "acks": "all",
    "linger_ms": 5,
    "delivery_timeout_ms": 300_000,  # rides out a broker restart
    "reconnect_backoff_max_ms": 2000,
    "max_block_ms": 120_000,
}


def dlq_topic(topic: str, suffix: str = DLQ_SUFFIX) -> str:
    """The dead-letter topic of `topic`.

    Example:
        >>> dlq_topic("posts")
        'posts.dlq'
    """
    return f"{topic}{suffix}"


@dataclass(frozen=True, slots=True)
class DeadLetterMessage:
    """One message for the dead-letter topic: where it came from and why it failed."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason: str
    stage: str
    error: str
    extra: tuple[tuple[str, str], ...] = ()

    def headers(self) -> list[tuple[str, bytes]]:
        fields = [
            ("dlq.reason", self.reason), ("dlq.stage", self.stage),
            ("dlq.error", self.error[:MAX_ERROR_HEADER]),
            ("dlq.topic", self.topic), ("dlq.partition", str(self.partition)),
            ("dlq.offset", str(self.offset)), *self.extra,
        ]
        return [(k, v.encode("utf-8", "replace")) for k, v in fields]


class DeadLetterPublisher:
    """Publishes dead letters to `<topic><suffix>`; one producer per publisher."""

    def __init__(self, bootstrap: str, suffix: str = DLQ_SUFFIX, **config: object) -> None:
        self.bootstrap = bootstrap
        self.suffix = suffix
        self.config = {**PRODUCER_CONFIG, **config}
        self._producer: KafkaProducer | None = None

    def _get(self) -> KafkaProducer:
        if self._producer is None:
            try:
                self._producer = KafkaProducer(bootstrap_servers=self.bootstrap,
                                               client_id=f"{CLIENT_ID}-dlq", **self.config)
            except KafkaError as e:
                raise StreamingError(f"cannot reach Kafka at {self.bootstrap} to publish dead "
                                     f"letters: {e.__class__.__name__}: {e}") from e
        return self._producer

    def publish(self, messages: Iterable[DeadLetterMessage]) -> int:
        """Send and wait for every acknowledgement; returns how many were published."""
        messages = list(messages)
        if not messages:
            return 0
        producer = self._get()
        futures = [
            producer.send(dlq_topic(m.topic, self.suffix), key=m.key, value=m.value,
                          headers=m.headers())
            for m in messages
        ]
        producer.flush()
        try:
            for f in futures:
                f.get(timeout=0)  # flush() returned: each future is done; raise its error
        except KafkaError as e:
            raise StreamingError(f"publishing {len(messages)} dead letter(s) to Kafka failed: "
                                 f"{e.__class__.__name__}: {e}") from e
        return len(messages)

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=10)
            finally:
                self._producer = None

