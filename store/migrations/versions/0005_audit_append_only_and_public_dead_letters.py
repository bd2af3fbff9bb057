"""audit_log is append-only (triggers refuse UPDATE and DELETE); dead_letters_public view

Triggers on audit_log refuse every UPDATE and DELETE (and, on PostgreSQL, TRUNCATE), whoever
issues it, the table's owner included: the writer only ever inserts audit records (a plain
INSERT of the positions not yet recorded: store/audit_chain.py). The privileges of the writer role (see
store/roles.py) refuse the same statements before the trigger is reached; the trigger is the
second line, for the owner and for a database without the roles (SQLite). Dropping or
disabling a trigger is DDL, open to the owner only; the audit hash chain detects the rest.

On SQLite, a later migration that rebuilds audit_log (batch "move and copy": a dropped
column, a changed type) drops these triggers with the old table: it must create them again
(`create_sqlite_triggers()` below is the SQL to reuse).

dead_letters_public: every column of dead_letters but `payload` and `key` (the raw input,
which may hold personal data), for the reader role, which may not read dead_letters itself.
The view lists its columns: a column added to dead_letters later stays out of it until a
migration replaces the view.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MESSAGE = "audit_log is append-only"

PUBLIC_DEAD_LETTER_COLUMNS = (
    "position", "input_kind", "file", "line", "topic", "partition", "offset", "doc_id",
    "source", "stage", "reason", "error", "count", "first_seen", "last_seen", "run_id",
    "resolved_at", "resolved_by",
)

PG_FUNCTION = f"""
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = '{MESSAGE}: ' || TG_OP || ' refused',
        ERRCODE = 'prohibited_sql_statement_attempted',
        HINT = 'audit records are only ever inserted; a correction is a new record';
END
$$
"""
PG_TRIGGER = ("CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
              "ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change()")
SQLITE_TRIGGERS = tuple(
    f"CREATE TRIGGER audit_log_no_{op_name.lower()} BEFORE {op_name} ON audit_log "
    f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}: {op_name} refused'); END"
    for op_name in ("UPDATE", "DELETE")
)


def create_sqlite_triggers() -> None:
    for statement in SQLITE_TRIGGERS:
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        create_sqlite_triggers()
    columns = ", ".join(f'"{c}"' for c in PUBLIC_DEAD_LETTER_COLUMNS)
    op.execute(f"CREATE VIEW dead_letters_public AS SELECT {columns} FROM dead_letters")


def downgrade() -> None:
    op.execute("DROP VIEW dead_letters_public")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION audit_log_refuse_change()")
    else:
        op.execute("DROP TRIGGER audit_log_no_update")
        op.execute("DROP TRIGGER audit_log_no_delete")
