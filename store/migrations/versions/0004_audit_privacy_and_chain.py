"""audit records name the PII policy and counts, and form hash chains (tamper evidence)

audit_log: pii_policy (the policy version applied), pii_counts (entity type -> how many were
redacted; never the values), chain (the writer chain the record belongs to), prev_hash and
hash (the record's predecessor in its chain, and its own hash over a canonical encoding).
audit_heads: the last hash of each chain, and how many records it holds.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pii_policy", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("pii_counts", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("chain", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_audit_chain", ["chain", "seq"])
    op.create_table(
        "audit_heads",
        sa.Column("chain", sa.String(length=128), primary_key=True),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("keyed", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_heads")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_chain")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("chain")
        batch_op.drop_column("pii_counts")
        batch_op.drop_column("pii_policy")
