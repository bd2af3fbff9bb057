"""stream_offsets: the partition's owner and its epoch, to fence late writers

Several `docstream run` workers of one consumer group share a topic's partitions. Each time a
worker starts reading a partition it raises the partition's `epoch` by one and records itself
as `owner` (store.offsets.claim_partitions); every later transaction that writes results of
that partition moves the position only where the epoch is still the one it claimed
(store.writer), and is rolled back otherwise. A writer that lost the partition while it was
stalled (a paused process, a long GC, a network partition) can therefore never write a batch
that the partition's new owner writes too.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stream_offsets") as batch:
        batch.add_column(sa.Column("epoch", sa.BigInteger(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("owner", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stream_offsets") as batch:
        batch.drop_column("owner")
        batch.drop_column("epoch")
