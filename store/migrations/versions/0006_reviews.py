"""the review loop: classifications.text, reviewers, reviews (append-only)

- `classifications.text`: the post's text as stored for people to review, redacted by the
  run's privacy policy like every stored field. The job fills it for posts flagged
  needs_review (`docstream run --store-text review`, the default), for every post with
  `--store-text all`, never with `off`; NULL otherwise.
- `reviewers`: one row per person allowed to review; only the sha256 of their token is kept
  (`docstream reviewers add NAME` prints the token once). `revoked_at` ends a token.
- `reviews`: one row per human decision (accept or relabel), never updated: the latest row of
  a post is its human label. The model's label stays in `classifications` and is never
  touched by a review, so a later model version that reclassifies the post cannot erase the
  human label. Append-only by trigger on both stores, like audit_log.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MESSAGE = "reviews is append-only"
PG_FUNCTION = f"""
CREATE FUNCTION reviews_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = '{MESSAGE}: ' || TG_OP || ' refused',
        ERRCODE = 'prohibited_sql_statement_attempted',
        HINT = 'a review is never changed; a new decision is a new review';
END
$$
"""
PG_TRIGGER = ("CREATE TRIGGER reviews_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
              "ON reviews FOR EACH STATEMENT EXECUTE FUNCTION reviews_refuse_change()")
SQLITE_TRIGGERS = tuple(
    f"CREATE TRIGGER reviews_no_{op_name.lower()} BEFORE {op_name} ON reviews "
    f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}: {op_name} refused'); END"
    for op_name in ("UPDATE", "DELETE")
)


def upgrade() -> None:
    with op.batch_alter_table("classifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("text", sa.Text(), nullable=True))
    op.create_table(
        "reviewers",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("token_sha256", name="uq_reviewers_token"),
    )
    op.create_table(
        "reviews",
        sa.Column("review_id", sa.String(length=32), primary_key=True),
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("doc_id", sa.String(length=256), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("previous_label", sa.String(length=128), nullable=False),
        sa.Column("previous_score", sa.Float(), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("action IN ('accept', 'relabel')", name="ck_reviews_action"),
    )
    op.create_index("ix_reviews_doc", "reviews", ["source", "doc_id", "reviewed_at"])
    op.create_index("ix_reviews_reviewed_at", "reviews", ["reviewed_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER reviews_append_only ON reviews")
        op.execute("DROP FUNCTION reviews_refuse_change()")
    op.drop_index("ix_reviews_reviewed_at", table_name="reviews")
    op.drop_index("ix_reviews_doc", table_name="reviews")
    op.drop_table("reviews")
    op.drop_table("reviewers")
    with op.batch_alter_table("classifications", schema=None) as batch_op:
        batch_op.drop_column("text")
