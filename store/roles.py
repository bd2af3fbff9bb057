"""Least privilege on PostgreSQL: an owner, a writer, a reader and a reviewer role per store.

- `PREFIX_owner` (`docstream db upgrade`, migrations): owns docstream's tables, the view
  and the trigger functions; CREATE on the schema. Adding and revoking reviewers (rows of
  `reviewers`: `docstream reviewers add`) is the owner's: run it with the owner's (or an
  administrator's) URL; no other role may write that table.
- `PREFIX_writer` (`docstream run`, `replay`, `model`): `TABLE_GRANTS`, i.e. SELECT, INSERT,
  UPDATE on the job's tables; SELECT, INSERT on audit_log (never UPDATE, DELETE, TRUNCATE);
  USAGE on audit_log's sequence. Nothing on reviewers and reviews.
- `PREFIX_reader` (`docstream query`, `docstream serve`'s reads): SELECT on classifications
  (its `text` is redacted), explanations (over that text), audit_log, audit_heads, runs,
  model_versions, reviews (the human labels) and the view dead_letters_public; not on
  dead_letters (its payloads), stream_offsets nor reviewers (token hashes).
- `PREFIX_reviewer` (`docstream serve --review-db`): INSERT on reviews only (no SELECT,
  UPDATE, DELETE, TRUNCATE: it can add a decision, not read or change one), SELECT on
  reviewers (to check a token against the stored hashes) and on alembic_version (the
  server checks the schema version); nothing else. reviews has no serial column (its key is
  a client-generated uuid), so it needs no sequence.

None of the writer, reader and reviewer may create, alter or drop anything: they own nothing
and have no CREATE on the schema (`ensure_roles` also revokes CREATE on it from PUBLIC, the
default before PostgreSQL 15).

Grants are per table, never default privileges: a default grant would hand every later
table to the reader before anyone decided it holds nothing private, and UPDATE on a later
append-only table to the writer. Instead `grant_privileges` applies `TABLE_GRANTS` (revoking
first, so a stale grant goes) and runs in `ensure_roles` (`docstream db roles`) and after
every migration in `upgrade_as_owner` (`docstream db upgrade`). A new table needs its line
in `TABLE_GRANTS` (tests/store/test_roles.py fails until it has one).

Passwords (for password authentication) are hashed by the driver (libpq's
PQencryptPasswordConn, the server's `password_encryption`) and only the hash is sent; no
password, hash or URL with a password goes into a message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from .errors import StoreError
from .masking import mask_url
from .migrate import current_revision, quote_ident, upgrade
from .transient import driver_message

ROLE_KINDS = ("owner", "writer", "reader", "reviewer")
#: the roles that get `TABLE_GRANTS` (the owner owns everything)
GRANTEES = ("writer", "reader", "reviewer")
DEFAULT_PREFIX = "docstream"
_PREFIX = re.compile(r"[a-z][a-z0-9_]{0,40}")

_WRITE = ("SELECT", "INSERT", "UPDATE")
_READ = ("SELECT",)
# relation -> what each of `GRANTEES` gets (every one named, () for nothing); the owner owns
# them all.
TABLE_GRANTS: dict[str, dict[str, tuple[str, ...]]] = {
    "classifications": {"writer": _WRITE, "reader": _READ, "reviewer": ()},
    "dead_letters": {"writer": _WRITE, "reader": (), "reviewer": ()},
    "dead_letters_public": {"writer": _READ, "reader": _READ, "reviewer": ()},
    "audit_log": {"writer": ("SELECT", "INSERT"), "reader": _READ, "reviewer": ()},
    "audit_heads": {"writer": _WRITE, "reader": _READ, "reviewer": ()},
    "stream_offsets": {"writer": _WRITE, "reader": (), "reviewer": ()},
    "runs": {"writer": _WRITE, "reader": _READ, "reviewer": ()},
    "model_versions": {"writer": _WRITE, "reader": _READ, "reviewer": ()},
    # attributions over the stored (redacted) text: as readable as that text
    "explanations": {"writer": _WRITE, "reader": _READ, "reviewer": ()},
    # token hashes: the reviewer checks tokens; the owner adds and revokes reviewers
    "reviewers": {"writer": (), "reader": (), "reviewer": _READ},
    # append-only (trigger); the reviewer adds decisions without reading any back
    "reviews": {"writer": (), "reader": _READ, "reviewer": ("INSERT",)},
    "alembic_version": {"writer": _READ, "reader": _READ, "reviewer": _READ},
}
VIEWS = frozenset({"dead_letters_public"})
FUNCTIONS = ("audit_log_refuse_change()", "reviews_refuse_change()")
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
# serializes concurrent `db roles` / `db upgrade` grants on one database
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('docstream.store.roles'))"


@dataclass(frozen=True)
class RoleNames:
    """The four role names of one prefix: `docstream` gives docstream_owner, ..."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix):
            raise StoreError(f"bad role prefix {self.prefix!r}: lower-case letters, digits and "
                             "_, starting with a letter, at most 41 characters")

    def of(self, kind: str) -> str:
        if kind not in ROLE_KINDS:
            raise ValueError(f"unknown role kind {kind!r}; one of {', '.join(ROLE_KINDS)}")
        return f"{self.prefix}_{kind}"

    @property
    def owner(self) -> str:
        return self.of("owner")

    @property
    def writer(self) -> str:
        return self.of("writer")

    @property
    def reader(self) -> str:
        return self.of("reader")

    @property
    def reviewer(self) -> str:
        return self.of("reviewer")

    def all(self) -> tuple[str, ...]:
        """The role names, in `ROLE_KINDS` order."""
        return tuple(self.of(kind) for kind in ROLE_KINDS)

    def grantees(self) -> str:
        """The roles of `GRANTEES`, quoted and comma-separated (for GRANT and REVOKE)."""
        return ", ".join(quote_ident(self.of(kind)) for kind in GRANTEES)


@dataclass
class RolesReport:
    """What `ensure_roles` did."""

    schema: str = ""
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    passwords_set: list[str] = field(default_factory=list)
    reowned: list[str] = field(default_factory=list)  # relations whose owner changed
    missing: list[str] = field(default_factory=list)  # relations not there yet (not migrated)
    public_create_revoked: bool = False


@dataclass
class UpgradeReport:
    """What `upgrade_as_owner` did."""

    before: str | None = None
    after: str | None = None
    as_role: str | None = None  # SET ROLE for the migration, when not connected as the owner
    granted: bool = False  # grants re-applied
    note: str = ""  # why the grants were not re-applied


def role_url(url: str | URL, role: str) -> URL:
    """`url` for `role`: same server and database, that user, no password."""
    return make_url(url).set(username=role, password=None)


def _require_postgresql(engine: Engine, what: str) -> None:
    if engine.dialect.name != "postgresql":
        raise StoreError(f"{what} needs PostgreSQL; {mask_url(engine.url)} is "
                         f"{engine.dialect.name} (a SQLite store is one file: protect it with "
                         "file permissions; its audit_log triggers come with the migrations)")


def _schema(conn: Connection) -> str:
    schema = conn.execute(text("SELECT current_schema()")).scalar()
    if schema is None:
        raise StoreError("no current schema (an empty search_path?): set one for this user")
    return str(schema)


def _relations(conn: Connection, names: Any) -> dict[str, tuple[str, str]]:
    """name -> (relkind, owner) of those of `names` in the current schema."""
    rows = conn.execute(text(
        "SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner) FROM pg_class c "
        "WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())"
        " AND c.relname = ANY(:names)"), {"names": list(names)})
    return {r[0]: (r[1], r[2]) for r in rows}


def existing_roles(conn: Connection, names: RoleNames) -> set[str]:
    rows = conn.execute(text("SELECT rolname FROM pg_roles WHERE rolname = ANY(:n)"),
                        {"n": list(names.all())})
    return {r[0] for r in rows}


def _serial_sequences(conn: Connection, tables: list[str]) -> list[str]:
    """The sequences behind serial columns of `tables` (audit_log.seq; reviews has none)."""
    rows = conn.execute(text(
        "SELECT DISTINCT s.relname FROM pg_class s "
        "JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid "
        " AND d.deptype = 'a' "
        "JOIN pg_class t ON t.oid = d.refobjid "
        "WHERE s.relkind = 'S' AND t.relname = ANY(:tables) AND t.relnamespace = "
        "(SELECT oid FROM pg_namespace WHERE nspname = current_schema()) ORDER BY 1"),
        {"tables": tables})
    return [r[0] for r in rows]


def grant_privileges(conn: Connection, names: RoleNames) -> list[str]:
    """Apply `TABLE_GRANTS` to the relations there are (each: revoke all from the writer,
    the reader and the reviewer, then grant its line), and USAGE on the serial sequences of
    the tables a role inserts into to that role (revoked from the others). Returns the
    relations not there yet. The connected role must own the relations (or be a
    superuser)."""
    present = _relations(conn, TABLE_GRANTS)
    grantees = names.grantees()
    for relation, grants in TABLE_GRANTS.items():
        if relation not in present:
            continue
        rel = quote_ident(relation)
        conn.execute(text(f"REVOKE ALL ON TABLE {rel} FROM {grantees}"))
        for kind, privileges in grants.items():
            if privileges:
                conn.execute(text(f"GRANT {', '.join(privileges)} ON TABLE {rel} "
                                  f"TO {quote_ident(names.of(kind))}"))
    tables = [r for r in TABLE_GRANTS if r in present and r not in VIEWS]
    for sequence in _serial_sequences(conn, tables):
        conn.execute(text(f"REVOKE ALL ON SEQUENCE {quote_ident(sequence)} FROM {grantees}"))
    for kind in GRANTEES:
        inserting = [r for r in tables if "INSERT" in TABLE_GRANTS[r][kind]]
        for sequence in _serial_sequences(conn, inserting) if inserting else ():
            conn.execute(text(f"GRANT USAGE ON SEQUENCE {quote_ident(sequence)} "
                              f"TO {quote_ident(names.of(kind))}"))
    return [r for r in TABLE_GRANTS if r not in present]


def effective_privileges(conn: Connection, names: RoleNames) -> dict[str, dict[str, list[str]]]:
    """relation -> role kind -> the table privileges it holds (`PRIVILEGES`), as the server
    says (has_table_privilege), for the relations there are."""
    present = _relations(conn, TABLE_GRANTS)
    out: dict[str, dict[str, list[str]]] = {}
    for relation in TABLE_GRANTS:
        if relation not in present:
            continue
        out[relation] = {}
        for kind in ROLE_KINDS:
            held = conn.execute(text(
                "SELECT p FROM unnest(CAST(:privs AS text[])) AS p "
                "WHERE has_table_privilege(:role, CAST(:rel AS regclass), p)"),
                {"privs": list(PRIVILEGES), "role": names.of(kind),
                 "rel": quote_ident(relation)}).scalars().all()
            out[relation][kind] = list(held)
    return out


def _check_admin(conn: Connection) -> None:
    row = conn.execute(text("SELECT current_user, rolsuper, rolcreaterole FROM pg_roles "
                            "WHERE rolname = current_user")).one()
    if not (row[1] or row[2]):
        raise StoreError(f"user {row[0]} may not create roles: run `docstream db roles` with "
                         "an administrator's URL (a superuser, or a user with CREATEROLE that "
                         "owns the tables)")


def _ensure_role(conn: Connection, role: str, report: RolesReport) -> None:
    row = conn.execute(text("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles "
                            "WHERE rolname = :r"), {"r": role}).one_or_none()
    if row is None:
        conn.execute(text(f"CREATE ROLE {quote_ident(role)} LOGIN NOSUPERUSER NOCREATEDB "
                          "NOCREATEROLE NOREPLICATION NOBYPASSRLS"))
        report.created.append(role)
        return
    if row[0] or row[1]:
        raise StoreError(f"role {role} exists and is a superuser or bypasses row security: "
                         "that defeats least privilege; pick another --prefix or alter it")
    if not row[2]:
        conn.execute(text(f"ALTER ROLE {quote_ident(role)} LOGIN"))
    report.existing.append(role)


def _set_password(conn: Connection, role: str, password: str) -> None:
    """ALTER ROLE ... PASSWORD with the driver's hash of `password` (never the password)."""
    pgconn = conn.connection.driver_connection.pgconn  # type: ignore[union-attr]
    verifier = pgconn.encrypt_password(password.encode(), role.encode()).decode()
    literal = "'" + verifier.replace("'", "''") + "'"
    # exec_driver_sql: a ':' in the hash is no bind parameter
    conn.exec_driver_sql(f"ALTER ROLE {quote_ident(role)} PASSWORD {literal}")


def _revoke_public_create(conn: Connection, schema: str) -> bool:
    """Revoke CREATE on the schema from PUBLIC where it is granted (PostgreSQL < 15)."""
    granted = conn.execute(text(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a "
        "WHERE n.nspname = :s AND a.grantee = 0 AND a.privilege_type = 'CREATE')"),
        {"s": schema}).scalar()
    if granted:
        conn.execute(text(f"REVOKE CREATE ON SCHEMA {quote_ident(schema)} FROM PUBLIC"))
    return bool(granted)


def _reown(conn: Connection, owner: str, report: RolesReport) -> None:
    """Make `owner` own docstream's relations and trigger function (ALTER TABLE also moves
    the table's indexes and serial sequences)."""
    for relation, (kind, current) in sorted(_relations(conn, TABLE_GRANTS).items()):
        if current == owner:
            continue
        what = "VIEW" if kind == "v" else "TABLE"
        conn.execute(text(f"ALTER {what} {quote_ident(relation)} OWNER TO {quote_ident(owner)}"))
        report.reowned.append(relation)
    for function in FUNCTIONS:
        name = function.split("(")[0]
        found = conn.execute(text(
            "SELECT pg_get_userbyid(p.proowner) FROM pg_proc p WHERE p.proname = :n AND "
            "p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())"),
            {"n": name}).scalar()
        if found is not None and found != owner:
            conn.execute(text(f"ALTER FUNCTION {quote_ident(name)}() OWNER TO "
                              f"{quote_ident(owner)}"))
            report.reowned.append(function)


def ensure_roles(engine: Engine, names: RoleNames,
                 passwords: Mapping[str, str] | None = None) -> RolesReport:
    """Create (or bring back in line) the owner, writer, reader and reviewer roles of `names`
    and their privileges on the store at `engine`, in one transaction; idempotent.

    `passwords`: role kind -> password to set (others keep theirs; a new role without one
    has none, for trust, peer or certificate authentication). Connect as a superuser, or a
    CREATEROLE user that owns the tables."""
    _require_postgresql(engine, "`docstream db roles`")
    passwords = dict(passwords or {})
    unknown = sorted(set(passwords) - set(ROLE_KINDS))
    if unknown:
        raise ValueError(f"passwords for unknown role kinds {unknown}")
    report = RolesReport()
    try:
        with engine.begin() as conn:
            conn.execute(text(_LOCK))
            _check_admin(conn)
            report.schema = _schema(conn)
            for kind in ROLE_KINDS:
                role = names.of(kind)
                _ensure_role(conn, role, report)
                if kind in passwords:
                    _set_password(conn, role, passwords[kind])
                    report.passwords_set.append(role)
            database = conn.execute(text("SELECT current_database()")).scalar_one()
            everyone = ", ".join(quote_ident(r) for r in names.all())
            schema = quote_ident(report.schema)
            conn.execute(text(f"GRANT CONNECT ON DATABASE {quote_ident(database)} "
                              f"TO {everyone}"))
            conn.execute(text(f"GRANT USAGE ON SCHEMA {schema} TO {everyone}"))
            conn.execute(text(f"GRANT CREATE ON SCHEMA {schema} TO {quote_ident(names.owner)}"))
            conn.execute(text(f"REVOKE CREATE ON SCHEMA {schema} FROM {names.grantees()}"))
            report.public_create_revoked = _revoke_public_create(conn, report.schema)
            _reown(conn, names.owner, report)
            report.missing = grant_privileges(conn, names)
    except SQLAlchemyError as e:
        raise StoreError(f"cannot set up the roles {', '.join(names.all())} at "
                         f"{mask_url(engine.url)}: {driver_message(e)}") from e
    return report


def upgrade_as_owner(engine: Engine, names: RoleNames) -> UpgradeReport:
    """Migrate the store to the newest revision, then re-apply the grants (`docstream db
    upgrade`). On PostgreSQL with the roles of `names` in place, the migration runs as the
    owner role (SET ROLE, when connected as an administrator that may), so that what it
    creates belongs to the owner; the writer, reader and reviewer then get their
    `TABLE_GRANTS` on whatever it created. Without the roles (or on SQLite) it only migrates."""
    report = UpgradeReport()
    postgres = engine.dialect.name == "postgresql"
    can_grant = False
    try:
        with engine.connect() as conn:
            report.before = current_revision(conn)
            if postgres:
                there = existing_roles(conn, names)
                missing = [r for r in names.all() if r not in there]
                if missing:
                    report.note = (f"no roles {', '.join(missing)} here: grants not "
                                   "re-applied; run `docstream db roles` as an administrator "
                                   "to create them")
                else:
                    who, member = conn.execute(text(
                        "SELECT current_user, pg_has_role(current_user, :o, 'MEMBER')"),
                        {"o": names.owner}).one()
                    can_grant = bool(member)
                    if member and who != names.owner:
                        report.as_role = names.owner
                    if not member:
                        report.note = (f"user {who} is not {names.owner}: grants not re-applied"
                                       "; use the owner's URL")
    except SQLAlchemyError as e:
        raise StoreError(f"cannot read the store at {mask_url(engine.url)}: "
                         f"{driver_message(e)}") from e
    upgrade(engine, role=report.as_role)
    try:
        with engine.begin() as conn:
            report.after = current_revision(conn)
            if can_grant:
                conn.execute(text(_LOCK))
                conn.execute(text(f"SET LOCAL ROLE {quote_ident(names.owner)}"))
                grant_privileges(conn, names)
                report.granted = True
    except SQLAlchemyError as e:
        raise StoreError(f"migrated the store at {mask_url(engine.url)}, but cannot grant "
                         f"the writer, reader and reviewer their privileges: {driver_message(e)}; "
                         "run `docstream db "
                         "roles` as an administrator (it gives the owner every table)") from e
    return report
