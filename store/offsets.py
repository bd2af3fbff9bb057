"""Read the durable Kafka positions back, for a restart to resume from."""

from __future__ import annotations

from sqlalchemy import Engine, select

from .tables import StreamOffsetRow


def load_positions(engine: Engine, consumer_group: str) -> dict[tuple[str, int], int]:
    """{(topic, partition): next_offset} stored for `consumer_group`."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(StreamOffsetRow.topic, StreamOffsetRow.partition, StreamOffsetRow.next_offset)
            .where(StreamOffsetRow.consumer_group == consumer_group)
        ).all()
    return {(t, p): int(o) for t, p, o in rows}
