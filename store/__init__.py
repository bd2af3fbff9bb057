"""The SQL store: tables, migrations (Alembic), the single batched writer, read-only queries."""
