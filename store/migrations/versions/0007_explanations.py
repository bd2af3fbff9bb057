"""explanations: token attributions of a result, per post and model version

One row per (source, doc_id, model_version): the words of the STORED (redacted) text with
their attribution towards `target` (the label the model gave), the method and its settings,
and the convergence delta. Words the privacy policy removed are never stored: a redacted span
is one entry holding the placeholder the stored text holds (its attribution summed).
`text_sha256` is the sha256 of the stored text the spans point into: a view shows the
highlights only when it still matches.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "explanations",
        sa.Column("source", sa.String(length=256), primary_key=True),
        sa.Column("doc_id", sa.String(length=256), primary_key=True),
        sa.Column("model_version", sa.String(length=64), primary_key=True),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("target_prob", sa.Float(), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("delta", sa.Float(), nullable=False),
        sa.Column("words", sa.JSON(), nullable=False),
        sa.Column("windows", sa.JSON(), nullable=False),
        sa.Column("text_field", sa.String(length=16), nullable=False),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("pii_policy", sa.String(length=64), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("explanations")
