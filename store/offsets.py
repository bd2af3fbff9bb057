"""The durable Kafka positions: read back for a restart, and claimed by a worker of a group.

A worker that starts reading partitions claims them (`claim_partitions`): each partition's
owner epoch rises by one and names the worker, in one transaction that also reads the
position to resume from. Writes carry the epoch they claimed (schemas.envelope.PartitionMark)
and are refused once it moved on (store.writer), so of two workers that both believe they own
a partition, only the latest claimant writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from .tables import StreamOffsetRow


class Claim(BaseModel):
    """A worker's claim on a partition: the epoch to write with, the position to start at."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    epoch: int
    next_offset: int


def load_positions(engine: Engine, consumer_group: str) -> dict[tuple[str, int], int]:
    """{(topic, partition): next_offset} stored for `consumer_group`."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(StreamOffsetRow.topic, StreamOffsetRow.partition, StreamOffsetRow.next_offset)
            .where(StreamOffsetRow.consumer_group == consumer_group)
        ).all()
    return {(t, p): int(o) for t, p, o in rows}


def load_owners(engine: Engine, consumer_group: str
                ) -> dict[tuple[str, int], tuple[int, str | None]]:
    """{(topic, partition): (epoch, owner)} of `consumer_group`."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(StreamOffsetRow.topic, StreamOffsetRow.partition, StreamOffsetRow.epoch,
                   StreamOffsetRow.owner)
            .where(StreamOffsetRow.consumer_group == consumer_group)
        ).all()
    return {(t, p): (int(e), o) for t, p, e, o in rows}


def claim_partitions(engine: Engine, consumer_group: str, owner: str,
                     keys: Iterable[tuple[str, int]],
                     starts: dict[tuple[str, int], int] | None = None
                     ) -> dict[tuple[str, int], Claim]:
    """Claim `keys` for `owner`: raise each epoch by one, and return it with the stored
    position. A partition never written before gets a row at `starts[key]` (default 0).

    Each partition is claimed with an upsert that locks its row: a writer of the previous
    owner either committed before (and the position returned includes its batch) or is
    fenced after (its epoch is stale)."""
    now = datetime.now(UTC)
    t = StreamOffsetRow.__table__
    claims: dict[tuple[str, int], Claim] = {}
    with engine.begin() as conn:
        for topic, partition in sorted(set(keys)):
            key = ((t.c.consumer_group == consumer_group) & (t.c.topic == topic)
                   & (t.c.partition == partition))
            insert = (postgresql.insert if conn.dialect.name == "postgresql"
                      else sqlite.insert)(t).values(
                consumer_group=consumer_group, topic=topic, partition=partition,
                next_offset=(starts or {}).get((topic, partition), 0), updated_at=now,
                epoch=1, owner=owner)
            conn.execute(insert.on_conflict_do_update(
                index_elements=["consumer_group", "topic", "partition"],
                set_={"epoch": t.c.epoch + 1, "owner": owner, "updated_at": now}))
            epoch, position = conn.execute(select(t.c.epoch, t.c.next_offset).where(key)).one()
            claims[(topic, partition)] = Claim(topic=topic, partition=partition,
                                               epoch=int(epoch), next_offset=int(position))
    return claims
