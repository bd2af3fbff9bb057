"""Create or migrate the schema with Alembic.

Every job calls `upgrade(engine)` at its start. A store already at the wanted revision is
left alone without running Alembic at all, so a job connected as a role without DDL rights
(the writer role of store/roles.py) starts on a current schema; a store that is behind and
a role that cannot migrate it fail in one line that says to run `docstream db upgrade` as
the schema's owner.
"""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from .errors import StoreError
from .masking import mask_url
from .transient import driver_message


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("docstream.store") / "migrations"))
    return cfg


def head_revision() -> str:
    """The newest revision this docstream knows (the history is one line: one head)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package ships its migrations
        raise StoreError("docstream's migrations are missing from the package")
    return head


def known_revisions() -> set[str]:
    return {r.revision for r in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def current_revision(conn: Connection) -> str | None:
    """The store's revision (None: never migrated)."""
    heads = MigrationContext.configure(conn).get_current_heads()
    return heads[0] if heads else None


def migration_blocker(conn: Connection) -> str | None:
    """Why the connected role cannot run migrations here, or None when it can (SQLite: a
    file the process can write). PostgreSQL: it needs CREATE on the schema and to own the
    existing alembic_version table (the tables' owner; a superuser may do anything)."""
    if conn.dialect.name != "postgresql":
        return None
    row = conn.execute(text(
        "SELECT current_user AS who, r.rolsuper AS superuser, "
        "has_schema_privilege(current_schema(), 'CREATE') AS can_create, "
        "(SELECT pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_class c "
        " WHERE c.oid = to_regclass('alembic_version')) AS owns_version "
        "FROM pg_roles r WHERE r.rolname = current_user")).one()
    if row.superuser:
        return None
    if not row.can_create:
        return f"user {row.who} may not create tables in the schema"
    if row.owns_version is False:
        return f"user {row.who} does not own the tables"
    return None


#: the PostgreSQL advisory lock key that serialises concurrent migrations ("docstrm" in hex)
MIGRATION_LOCK = 0x646F637374726D


def upgrade(engine: Engine, revision: str = "head", role: str | None = None) -> None:
    """Bring the database at `engine` to `revision` (default: the newest).

    Already there: nothing runs (no DDL, no lock), whatever the connected role may do.
    Behind, with a role that may not migrate: `StoreError` in one line, naming the
    command that migrates. `role`: PostgreSQL `SET LOCAL ROLE` for the migration, so that
    what it creates belongs to that role (`docstream db upgrade` run by an administrator).
    """
    # The connection is handed over (migrations/env.py); the URL never goes into Alembic's
    # config, whose ConfigParser would choke on a '%' in a password and quote it.
    cfg = alembic_config()
    where = mask_url(engine.url)
    wanted = head_revision() if revision == "head" else revision
    try:
        with engine.begin() as conn:
            if role is not None:
                conn.execute(text(f"SET LOCAL ROLE {quote_ident(role)}"))
            current = current_revision(conn)
            if current == wanted:
                return
            if conn.dialect.name == "postgresql":
                # workers started together on a fresh database: one migrates, the others
                # wait here and then find it done (the lock ends with the transaction)
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
                current = current_revision(conn)
                if current == wanted:
                    return
            if current is not None and current not in known_revisions():
                raise StoreError(
                    f"the store at {where} is at revision {current}, which this docstream does "
                    f"not know (its newest is {head_revision()}): a newer docstream migrated it; "
                    "run that version")
            blocker = migration_blocker(conn)
            if blocker is not None:
                raise StoreError(
                    f"the store at {where} is at revision {current or 'none (empty)'} and "
                    f"this docstream needs {wanted}, but {blocker}: run `docstream db upgrade "
                    "--db OWNER_URL` with the schema owner's URL first")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except SQLAlchemyError as e:
        raise StoreError(f"cannot migrate the store at {where}: "
                         f"{e.__class__.__name__}: {driver_message(e)}") from e
    except CommandError as e:  # e.g. a store migrated by a newer docstream
        raise StoreError(f"cannot migrate the store at {where}: {str(e).splitlines()[0]}"
                         ) from e


def quote_ident(name: str) -> str:
    """`name` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
