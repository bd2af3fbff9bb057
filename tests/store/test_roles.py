"""Least privilege on the real PostgreSQL (store/roles.py, `docstream db`), and audit_log and
reviews append-only on both stores (the triggers of migrations 0005 and 0006).

Roles are cluster-wide: every test uses its own prefix (t + 8 hex digits) and drops its
roles afterwards. The server trusts 127.0.0.1, so a LOGIN role connects without a password.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from docstream.cli import main
from docstream.privacy.redact import IdentityRedactor
from docstream.schemas.envelope import PartitionMark, WriteBatch
from docstream.schemas.review import ReviewDecision
from docstream.store import registry
from docstream.store.dead_letters import open_dead_letters
from docstream.store.engine import make_engine
from docstream.store.errors import StoreError
from docstream.store.migrate import alembic_config, head_revision, upgrade
from docstream.store.offsets import load_positions
from docstream.store.query import query_results
from docstream.store.reviews import (
    add_reviewer,
    authenticate,
    insert_review,
    latest_reviews_query,
    result_for_review,
)
from docstream.store.roles import (
    GRANTEES,
    PRIVILEGES,
    TABLE_GRANTS,
    VIEWS,
    RoleNames,
    effective_privileges,
    ensure_roles,
    role_url,
    upgrade_as_owner,
)
from docstream.store.runs import count_run, finish_run, start_run
from docstream.store.tables import AuditRow, Base, ClassificationRow, DeadLetterRow, ReviewRow
from docstream.store.writer import StoreWriter
from tests.store.test_writer import failure, result

APPEND_ONLY = "audit_log is append-only"
REVIEWS_APPEND_ONLY = "reviews is append-only"
PRIVILEGE_ERROR = "42501"  # insufficient_privilege (also "must be owner of ...")
TRIGGER_ERROR = "2F003"  # prohibited_sql_statement_attempted, raised by the trigger


def new_names() -> RoleNames:
    return RoleNames(f"t{uuid.uuid4().hex[:8]}")


def drop_roles(db_admin_url: str, names: RoleNames, only: tuple[str, ...] = ()) -> None:
    """DROP OWNED (what they own and were granted in that database, and on the database
    itself), then DROP ROLE; both only for the roles that exist (of `only`, when given)."""
    admin = create_engine(db_admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            there = conn.execute(text("SELECT rolname FROM pg_roles WHERE rolname = ANY(:n)"),
                                 {"n": list(only or names.all())}).scalars().all()
            if there:
                conn.execute(text(f"DROP OWNED BY {', '.join(there)}"))
                for role in there:
                    conn.execute(text(f"DROP ROLE {role}"))
    finally:
        admin.dispose()


def refusal(engine: Engine, sql: str) -> DBAPIError:
    """Run `sql` in a transaction (rolled back) and return the database's refusal."""
    with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
        conn.execute(text(sql))
    return caught.value


def sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


def store_writer(engine: Engine) -> StoreWriter:
    """A writer without PII detection (its models take seconds to load; privileges are the
    point here, and redaction changes values, not statements)."""
    return StoreWriter(engine, IdentityRedactor())


def first_batch() -> WriteBatch:
    mark = PartitionMark(consumer_group="g", topic="t", partition=0, next_offset=7)
    return WriteBatch(run_id="seed", results=[result("a", 1), result("b", 2)],
                      failures=[failure(3)], marks=[mark])


@dataclass(frozen=True)
class Store:
    names: RoleNames
    admin_url: str  # postgres, the superuser
    owner: Engine
    writer: Engine
    reader: Engine
    reviewer: Engine
    token: str  # reviewer "ann"'s

    def url(self, kind: str) -> str:
        return role_url(self.admin_url, self.names.of(kind)).render_as_string(False)


@pytest.fixture(scope="module")
def store(postgres_server: str) -> Iterator[Store]:
    """One database for the module, set up the documented way: `db roles` as the
    administrator on the empty database, `db upgrade` as the owner, one batch written by
    the writer, reviewer "ann" added by the owner and one review of hers (seed-review).
    Tests here add rows of their own or are refused (rolled back)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    server = create_engine(postgres_server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin_url = make_url(postgres_server).set(database=name).render_as_string(False)
    names = new_names()
    engines: list[Engine] = []
    try:
        admin = make_engine(admin_url)
        engines.append(admin)
        ensure_roles(admin, names)
        for kind in ("owner", "writer", "reader", "reviewer"):
            engines.append(make_engine(role_url(admin_url, names.of(kind))
                                       .render_as_string(False)))
        upgrade_as_owner(engines[1], names)
        token = add_reviewer(engines[1], "ann")  # the owner adds reviewers
        s = Store(names, admin_url, *engines[1:], token=token)
        store_writer(s.writer).write(first_batch())
        with s.owner.begin() as conn:
            conn.execute(text(
                "INSERT INTO reviews VALUES ('seed-review', '', 'a', 'accept', 'x', 'x', 0.5, "
                "'m', '1', 'ann', now())"))
        yield s
    finally:
        for engine in engines:
            engine.dispose()
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        drop_roles(postgres_server, names)
        server.dispose()


def test_every_relation_has_its_grant_line() -> None:
    """A new table must say what the writer, the reader and the reviewer get
    (store/roles.py)."""
    relations = set(Base.metadata.tables) | {"alembic_version", "dead_letters_public"}
    assert set(TABLE_GRANTS) == relations
    assert GRANTEES == ("writer", "reader", "reviewer")
    assert all(set(g) == set(GRANTEES) for g in TABLE_GRANTS.values())
    assert all(set(p) <= set(PRIVILEGES) for g in TABLE_GRANTS.values() for p in g.values())
    assert RoleNames("p").all() == ("p_owner", "p_writer", "p_reader", "p_reviewer")
    assert RoleNames("p").reviewer == "p_reviewer"


def test_the_grants_are_as_documented(store: Store) -> None:
    with store.owner.connect() as conn:
        held = effective_privileges(conn, store.names)
        owners = dict(conn.execute(text(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c WHERE "
            "c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v', 'S')")).all())
    assert set(owners.values()) == {store.names.owner}  # tables, the view, the sequence
    write, read = ["SELECT", "INSERT", "UPDATE"], ["SELECT"]
    assert {r: (k["writer"], k["reader"], k["reviewer"]) for r, k in held.items()} == {
        "classifications": (write, read, []),
        "dead_letters": (write, [], []),
        "dead_letters_public": (read, read, []),
        "audit_log": (["SELECT", "INSERT"], read, []),
        "audit_heads": (write, read, []),
        "stream_offsets": (write, [], []),
        "runs": (write, read, []),
        "model_versions": (write, read, []),
        "explanations": (write, read, []),
        "reviewers": ([], [], read),
        "reviews": ([], read, ["INSERT"]),
        "alembic_version": (read, read, read),
    }
    assert all(k["owner"] == list(PRIVILEGES) for k in held.values())
    # ...which is TABLE_GRANTS, line for line, as the server reports it
    assert {r: {k: set(p) for k, p in g.items()} for r, g in TABLE_GRANTS.items()} == {
        r: {k: set(held[r][k]) for k in GRANTEES} for r in held}
    with store.owner.connect() as conn:
        usage = {kind: conn.execute(text(
            "SELECT has_sequence_privilege(:r, 'audit_log_seq_seq', 'USAGE')"),
            {"r": store.names.of(kind)}).scalar_one() for kind in GRANTEES}
        functions = dict(conn.execute(text(
            "SELECT proname, pg_get_userbyid(proowner) FROM pg_proc "
            "WHERE proname LIKE '%_refuse_change'")).all())
    assert usage == {"writer": True, "reader": False, "reviewer": False}
    assert functions == {"audit_log_refuse_change": store.names.owner,
                         "reviews_refuse_change": store.names.owner}


def test_the_writer_writes_a_whole_batch_and_runs_a_job(store: Store) -> None:
    """Everything a job does, as the writer: migrations check (at head: nothing runs), run
    bookkeeping, a batch of results, dead letters, audit records and marks, the same batch
    again (every ON CONFLICT path), a result resolving a dead letter, replay's read, the
    registry, an audit chain head."""
    upgrade(store.writer)
    start_run(store.writer, "w1", "in.jsonl", "noop")
    writer = store_writer(store.writer)
    mark = PartitionMark(consumer_group="w", topic="t", partition=0, next_offset=3)
    batch = WriteBatch(run_id="w1", results=[result("w-a", 11), result("w-b", 12)],
                       failures=[failure(13), failure(14)], marks=[mark])
    report = writer.write(batch)
    assert (report.results, report.dead_letters, report.marks) == (2, 2, 1)
    writer.write(batch)  # a redelivery: upserts, count bumps, audit DO NOTHING
    writer.write(WriteBatch(run_id="w2", results=[result("w-c", 13)]))  # resolves line 13
    assert load_positions(store.writer, "w") == {("t", 0): 3}
    assert {d.position.ref for d in open_dead_letters(store.writer)} >= {"file:in.jsonl:14"}
    counts = count_run(store.writer, "w1")
    assert counts.inputs == 4  # audit records, none doubled
    finish_run(store.writer, "w1", "done", {"inputs": counts.inputs})
    registry.register(store.writer, name="m", version="1", path="/m", weights_sha256="e" * 64)
    assert registry.promote(store.writer, "m", "1").stage == "production"
    with store.writer.begin() as conn:
        for length in (1, 2):  # the chain writer's upsert of its head
            conn.execute(text(
                "INSERT INTO audit_heads (chain, head_hash, length, keyed, updated_at) "
                "VALUES ('c', :h, :n, false, now()) ON CONFLICT (chain) DO UPDATE SET "
                "head_hash = excluded.head_hash, length = excluded.length"),
                {"h": str(length) * 64, "n": length})
    with store.owner.connect() as conn:
        dead = conn.execute(select(DeadLetterRow.position, DeadLetterRow.count,
                                   DeadLetterRow.resolved_by)
                            .where(DeadLetterRow.run_id == "w1")
                            .order_by(DeadLetterRow.position)).all()
        assert [tuple(d) for d in dead] == [("file:in.jsonl:13", 2, "w2"),
                                                  ("file:in.jsonl:14", 2, None)]
        assert conn.execute(text("SELECT length FROM audit_heads WHERE chain = 'c'")
                            ).scalar_one() == 2


@pytest.mark.parametrize(("sql", "words"), [
    ("UPDATE audit_log SET outcome = 'forged'", "permission denied for table audit_log"),
    ("DELETE FROM audit_log", "permission denied for table audit_log"),
    ("TRUNCATE audit_log", "permission denied for table audit_log"),
    ("DELETE FROM classifications", "permission denied for table classifications"),
    ("DELETE FROM dead_letters", "permission denied for table dead_letters"),
    ("UPDATE dead_letters_public SET error = 'x'", "permission denied for view"),
    ("CREATE TABLE evil (x int)", "permission denied for schema public"),
    ("CREATE VIEW evil AS SELECT 1 AS x", "permission denied for schema public"),
    ("ALTER TABLE classifications ADD COLUMN evil int", "must be owner of table"),
    ("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only", "must be owner of table"),
    ("DROP TRIGGER audit_log_append_only ON audit_log", "must be owner of"),
    ("DROP TABLE audit_log", "must be owner of table audit_log"),
    ("ALTER TABLE audit_log OWNER TO CURRENT_USER", "must be owner of table audit_log"),
    ("SELECT * FROM reviews", "permission denied for table reviews"),
    ("INSERT INTO reviews DEFAULT VALUES", "permission denied for table reviews"),
    ("SELECT * FROM reviewers", "permission denied for table reviewers"),
    ("UPDATE reviewers SET revoked_at = NULL", "permission denied for table reviewers"),
])
def test_the_writer_is_refused(store: Store, sql: str, words: str) -> None:
    error = refusal(store.writer, sql)
    assert sqlstate(error) == PRIVILEGE_ERROR and words in str(error), str(error)


def _reader_refusals() -> list[str]:
    statements = []
    for relation in TABLE_GRANTS:
        column = ("version_num" if relation == "alembic_version" else "position"
                  if relation == "dead_letters_public" else
                  next(iter(Base.metadata.tables[relation].columns)).name)
        statements += [f"INSERT INTO {relation} DEFAULT VALUES",
                       f'UPDATE {relation} SET "{column}" = "{column}"',
                       f"DELETE FROM {relation}"]
    statements.extend([
        "SELECT * FROM dead_letters", "SELECT payload FROM dead_letters",
        "SELECT position FROM dead_letters", "SELECT * FROM stream_offsets",
        "CREATE TABLE evil (x int)", "TRUNCATE audit_log",
        "SELECT * FROM reviewers", "SELECT token_sha256 FROM reviewers", "TRUNCATE reviews",
    ])
    return statements


@pytest.mark.parametrize("sql", _reader_refusals())
def test_the_reader_is_refused(store: Store, sql: str) -> None:
    """On a plain (not read-only) connection: the privileges refuse, not the session."""
    error = refusal(store.reader, sql)
    assert sqlstate(error) == PRIVILEGE_ERROR and "permission denied" in str(error), str(error)


def test_the_reader_reads_results_audit_runs_registry_and_public_dead_letters(
        store: Store) -> None:
    with store.reader.connect() as conn:
        for relation in ("classifications", "audit_log", "audit_heads", "runs",
                         "model_versions", "dead_letters_public", "alembic_version", "reviews"):
            conn.execute(text(f"SELECT * FROM {relation}")).all()
        # the human label beside the model's (docstream query, the API), the redacted text
        latest = latest_reviews_query()
        human = conn.execute(select(ClassificationRow.label, ClassificationRow.text,
                                    latest.c.label).join(latest, (
            latest.c.source == ClassificationRow.source) & (
            latest.c.doc_id == ClassificationRow.id))).all()
        assert ("x",) in [(r[2],) for r in human]
        view = conn.execute(text("SELECT * FROM dead_letters_public WHERE run_id = 'seed'"))
        columns, rows = list(view.keys()), view.all()
    assert len(rows) == 1 and "payload" not in columns and "key" not in columns
    assert set(columns) == {c.name for c in DeadLetterRow.__table__.columns} - {"payload", "key"}
    assert {r["id"] for r in query_results(store.reader)} >= {"a", "b"}


def test_query_command_runs_as_the_reader(store: Store,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "--db", store.url("reader"), "--format", "json", "--limit", "0"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in rows} >= {"a", "b"}


@pytest.mark.parametrize("who", ["owner", "admin"])
@pytest.mark.parametrize("op", ["UPDATE", "DELETE", "TRUNCATE"])
def test_the_trigger_refuses_even_the_owner(store: Store, who: str, op: str) -> None:
    engine = store.owner if who == "owner" else make_engine(store.admin_url)
    sql = {"UPDATE": "UPDATE audit_log SET outcome = 'forged'",
           "DELETE": "DELETE FROM audit_log WHERE run_id = 'seed'",
           "TRUNCATE": "TRUNCATE audit_log"}[op]
    error = refusal(engine, sql)
    assert sqlstate(error) == TRIGGER_ERROR and f"{APPEND_ONLY}: {op} refused" in str(error)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(AuditRow)
                            .where(AuditRow.run_id == "seed")).scalar_one() == 3
    if who == "admin":
        engine.dispose()


@pytest.mark.parametrize("who", ["owner", "admin"])
@pytest.mark.parametrize("op", ["UPDATE", "DELETE", "TRUNCATE"])
def test_reviews_are_append_only_even_for_the_owner(store: Store, who: str, op: str) -> None:
    """The owner may insert (it owns the table) but the trigger of migration 0006 refuses
    every change of a review, whoever asks."""
    engine = store.owner if who == "owner" else make_engine(store.admin_url)
    sql = {"UPDATE": "UPDATE reviews SET label = 'forged' WHERE review_id = 'seed-review'",
           "DELETE": "DELETE FROM reviews WHERE review_id = 'seed-review'",
           "TRUNCATE": "TRUNCATE reviews"}[op]
    error = refusal(engine, sql)
    assert sqlstate(error) == TRIGGER_ERROR, str(error)
    assert f"{REVIEWS_APPEND_ONLY}: {op} refused" in str(error)
    with engine.connect() as conn:
        assert conn.execute(select(ReviewRow.label).where(
            ReviewRow.review_id == "seed-review")).scalar_one() == "x"
    if who == "admin":
        engine.dispose()


def test_the_reviewer_checks_tokens_and_inserts_reviews(store: Store) -> None:
    """Everything `docstream serve` does as the reviewer: check the schema's revision, check
    a token against the stored hashes, insert a review (of a result read as the reader)."""
    upgrade(store.reviewer)  # at head: only reads alembic_version
    assert authenticate(store.reviewer, store.token) == "ann"
    assert authenticate(store.reviewer, "dsr_" + "x" * 43) is None
    target = result_for_review(store.reader, "", "b")
    assert target is not None
    decision = ReviewDecision(source="", doc_id="b", action="accept",
                              seen_version=target.model_version)
    review = insert_review(store.reviewer, target, decision, "ann")
    with store.reviewer.begin() as conn:  # a plain INSERT, no RETURNING: no SELECT needed
        conn.execute(text(
            "INSERT INTO reviews VALUES (:id, '', 'b', 'relabel', 'y', 'x', 0.5, 'm', '1', "
            "'ann', now())"), {"id": uuid.uuid4().hex})
    with store.reader.connect() as conn:
        stored = conn.execute(select(ReviewRow.action, ReviewRow.label, ReviewRow.reviewer)
                              .where(ReviewRow.review_id == review.review_id)).one()
    assert tuple(stored) == ("accept", target.label, "ann")


def _reviewer_refusals() -> list[str]:
    """Every privilege of `PRIVILEGES` the reviewer lacks, on every relation, and DDL."""
    statements = []
    for relation, grants in TABLE_GRANTS.items():
        column = ("version_num" if relation == "alembic_version" else "position"
                  if relation == "dead_letters_public" else
                  next(iter(Base.metadata.tables[relation].columns)).name)
        sql = {"SELECT": f"SELECT * FROM {relation}",
               "INSERT": f"INSERT INTO {relation} DEFAULT VALUES",
               "UPDATE": f'UPDATE {relation} SET "{column}" = "{column}"',
               "DELETE": f"DELETE FROM {relation}",
               "TRUNCATE": f"TRUNCATE {relation}"}
        statements += [sql[p] for p in PRIVILEGES if p not in grants["reviewer"]
                       and not (p == "TRUNCATE" and relation in VIEWS)]
    statements.extend([
        "SELECT review_id FROM reviews WHERE doc_id = 'a'",
        "SELECT count(*) FROM reviews",
        "INSERT INTO reviews VALUES ('r1', '', 'a', 'accept', 'x', 'x', 0.5, 'm', '1', 'ann', "
        "now()) RETURNING review_id",  # RETURNING reads: SELECT
        "INSERT INTO reviewers VALUES ('eve', 'e', now(), NULL)",
        "UPDATE reviewers SET revoked_at = NULL",
        "SELECT label FROM classifications", "SELECT text FROM classifications",
        "INSERT INTO classifications (source, id) VALUES ('', 'forged')",
        "SELECT payload FROM dead_letters", "SELECT nextval('audit_log_seq_seq')",
        "CREATE TABLE evil (x int)",
    ])
    return statements


@pytest.mark.parametrize("sql", _reviewer_refusals())
def test_the_reviewer_is_refused(store: Store, sql: str) -> None:
    error = refusal(store.reviewer, sql)
    assert sqlstate(error) == PRIVILEGE_ERROR and "permission denied" in str(error), str(error)


@pytest.mark.parametrize(("sql", "words"), [
    ("ALTER TABLE reviews DISABLE TRIGGER reviews_append_only", "must be owner of table"),
    ("DROP TRIGGER reviews_append_only ON reviews", "must be owner of"),
    ("DROP TABLE reviews", "must be owner of table reviews"),
    ("ALTER TABLE reviewers OWNER TO CURRENT_USER", "must be owner of table reviewers"),
])
def test_the_reviewer_may_not_alter_reviews(store: Store, sql: str, words: str) -> None:
    error = refusal(store.reviewer, sql)
    assert sqlstate(error) == PRIVILEGE_ERROR and words in str(error), str(error)


def test_db_roles_is_idempotent_and_takes_over_a_legacy_store(
        pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A store migrated by the superuser (before roles existed): `db roles` twice gives the
    same roles, owners and grants; `db upgrade` as the owner then changes nothing either."""
    names = new_names()
    admin = make_engine(pg_url)
    upgrade(admin)

    def snapshot() -> set[tuple[str, ...]]:
        with admin.connect() as conn:
            acl = conn.execute(text(
                "SELECT c.relname, pg_get_userbyid(c.relowner), a.grantee::regrole::text, "
                "a.privilege_type FROM pg_class c, aclexplode(c.relacl) a "
                "WHERE c.relnamespace = 'public'::regnamespace")).all()
            roles = conn.execute(text(
                "SELECT rolname, rolcanlogin::text, rolsuper::text, rolcreaterole::text "
                "FROM pg_roles WHERE rolname LIKE :p"), {"p": f"{names.prefix}_%"}).all()
        return {tuple(r) for r in acl} | {tuple(r) for r in roles}

    try:
        args = ["db", "roles", "--db", pg_url, "--prefix", names.prefix]
        assert main(args) == 0
        first_out, first = capsys.readouterr().out, snapshot()
        assert main(args) == 0
        second_out, second = capsys.readouterr().out, snapshot()
        assert first == second
        assert first_out.count("created") == 4 and "now owns: alembic_version" in first_out
        assert "created" not in second_out and "now owns" not in second_out
        assert "audit_log              SELECT INSERT            SELECT" in second_out
        assert ("reviews                -                        SELECT                   "
                "INSERT") in second_out
        assert ("reviewers              -                        -                        "
                "SELECT") in second_out
        reviewer_url = role_url(pg_url, names.reviewer).render_as_string(False)
        assert f"docstream serve --review-db {reviewer_url}" in second_out
        assert f"DOCSTREAM_REVIEWER_DB={reviewer_url}" in second_out
        owner_url = role_url(pg_url, names.owner).render_as_string(False)
        assert main(["db", "upgrade", "--db", owner_url, "--prefix", names.prefix]) == 0
        assert "already at revision" in capsys.readouterr().out and snapshot() == first
    finally:
        admin.dispose()
        drop_roles(pg_url, names)


def test_the_owner_migrates_and_a_job_as_the_writer_migrates_nothing(
        pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty store: the writer may not create it (one line naming `docstream db
    upgrade`); the owner does, and again after a downgrade; at head the writer starts."""
    names = new_names()
    urls = {k: role_url(pg_url, names.of(k)).render_as_string(False)
            for k in ("owner", "writer")}
    admin = make_engine(pg_url)
    owner, writer = make_engine(urls["owner"]), make_engine(urls["writer"])
    try:
        ensure_roles(admin, names)
        head = head_revision()
        assert head == "0008"
        with pytest.raises(StoreError, match=r"at revision none \(empty\) and this docstream "
                           rf"needs {head}, .*may not create tables.*docstream db upgrade"):
            upgrade(writer)
        assert main(["db", "upgrade", "--db", urls["owner"], "--prefix", names.prefix]) == 0
        assert (f"migrated empty -> {head}; grants re-applied for {names.writer}, "
                f"{names.reader} and {names.reviewer}") in capsys.readouterr().out
        with owner.begin() as conn:  # the owner takes the newest migrations back...
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
        with pytest.raises(StoreError, match=r"at revision 0004 and this docstream needs "
                           rf"{head}, but user \w+ may not create tables in the schema: run "
                           "`docstream db upgrade --db OWNER_URL`"):
            upgrade(writer)
        # ...and an administrator's `db upgrade` migrates as the owner (SET ROLE)
        assert main(["db", "upgrade", "--db", pg_url, "--prefix", names.prefix]) == 0
        assert f"0004 -> {head} as {names.owner}" in capsys.readouterr().out
        upgrade(writer)  # at head: nothing to do, no DDL attempted
        store_writer(writer).write(first_batch())
        with admin.connect() as conn:
            assert conn.execute(text(
                "SELECT pg_get_userbyid(p.proowner) FROM pg_proc p "
                "WHERE p.proname = 'audit_log_refuse_change'")).scalar_one() == names.owner
    finally:
        for engine in (admin, owner, writer):
            engine.dispose()
        drop_roles(pg_url, names)


def test_a_store_set_up_before_the_reviewer_role_gets_it_from_db_roles(pg_url: str) -> None:
    """Roles made by an older docstream (no reviewer): `db upgrade` migrates but says which
    role is missing instead of granting half; `db roles` then adds the reviewer."""
    names = new_names()
    admin = make_engine(pg_url)
    try:
        ensure_roles(admin, names)
        drop_roles(pg_url, names, only=(names.reviewer,))
        report = upgrade_as_owner(admin, names)
        assert report.after == head_revision() and not report.granted
        assert f"no roles {names.reviewer} here" in report.note and "db roles" in report.note
        roles = ensure_roles(admin, names)
        assert roles.created == [names.reviewer] and roles.missing == []
        with admin.connect() as conn:
            held = effective_privileges(conn, names)
        assert held["reviews"]["reviewer"] == ["INSERT"]
        assert held["reviewers"]["reviewer"] == ["SELECT"]
    finally:
        admin.dispose()
        drop_roles(pg_url, names)


def test_passwords_come_from_the_environment_and_are_never_printed(
        pg_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    names = new_names()
    secret = f"pw'{uuid.uuid4().hex}:$x"
    monkeypatch.setenv("T_WRITER_PW", secret)
    try:
        assert main(["db", "roles", "--db", pg_url, "--prefix", names.prefix,
                     "--password-env", "writer=T_WRITER_PW"]) == 0
        out = capsys.readouterr()
        assert secret not in out.out + out.err and "password from $T_WRITER_PW" in out.out
        admin = make_engine(pg_url)
        with admin.connect() as conn:
            stored = dict(conn.execute(text(
                "SELECT rolname, rolpassword FROM pg_authid WHERE rolname LIKE :p"),
                {"p": f"{names.prefix}_%"}).all())
        admin.dispose()
        assert stored[names.writer].startswith("SCRAM-SHA-256$") and secret not in stored[
            names.writer]
        assert stored[names.owner] is None and stored[names.reader] is None
        assert stored[names.reviewer] is None
        # a re-run without --password-env keeps the password
        assert main(["db", "roles", "--db", pg_url, "--prefix", names.prefix]) == 0
        capsys.readouterr()
        # the writer's URL with its password works (trust here, but the URL must parse)
        url = role_url(pg_url, names.writer).set(password=secret)
        engine = make_engine(url.render_as_string(False))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar_one() == names.writer
        engine.dispose()
    finally:
        drop_roles(pg_url, names)


@pytest.mark.parametrize(("args", "words"), [
    (["--password-env", "writer=T_UNSET_PW_VAR"], "T_UNSET_PW_VAR (the writer's password) "
                                                  "is not set"),
    (["--password-env", "T_SOME_VAR"], "--password-env takes KIND=VAR"),
    (["--prefix", "Bad-Prefix"], "bad role prefix"),
])
def test_db_roles_argument_errors_are_one_line(args: list[str], words: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before any connection (the URL goes nowhere)."""
    assert main(["db", "roles", "--db", "postgresql+psycopg://u:pw@127.0.0.1:1/x", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and "pw@" not in err, err


def test_sqlite_triggers_refuse_update_and_delete_of_audit_log(
        sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade", "--db", sqlite_url]) == 0
    assert f"migrated empty -> {head_revision()}" in capsys.readouterr().out
    engine = make_engine(sqlite_url)
    try:
        writer = store_writer(engine)
        writer.write(first_batch())
        writer.write(first_batch())  # ON CONFLICT DO NOTHING fires no update trigger
        for op, sql in (("UPDATE", "UPDATE audit_log SET outcome = 'forged'"),
                        ("DELETE", "DELETE FROM audit_log")):
            error = refusal(engine, sql)
            assert f"{APPEND_ONLY}: {op} refused" in str(error)
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(AuditRow)).scalar_one() == 3
            assert conn.execute(select(func.count()).select_from(ClassificationRow)
                                ).scalar_one() == 2
            view = conn.execute(text("SELECT * FROM dead_letters_public"))
            assert "payload" not in list(view.keys()) and len(view.all()) == 1
    finally:
        engine.dispose()
    assert main(["db", "roles", "--db", sqlite_url]) == 2
    assert "needs PostgreSQL" in capsys.readouterr().err


def test_sqlite_triggers_refuse_update_and_delete_of_reviews(sqlite_url: str) -> None:
    """SQLite has no roles: the triggers of migration 0006 are what keeps reviews
    append-only there; inserting (what `docstream serve` does) still works."""
    engine = make_engine(sqlite_url)
    try:
        upgrade(engine)
        add_reviewer(engine, "ann")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO reviews VALUES ('r1', '', 'a', 'accept', 'x', 'x', 0.5, 'm', '1', "
                "'ann', '2026-12-05 00:00:00')"))
        for op, sql in (("UPDATE", "UPDATE reviews SET label = 'forged'"),
                        ("DELETE", "DELETE FROM reviews WHERE review_id = 'r1'")):
            error = refusal(engine, sql)
            assert f"{REVIEWS_APPEND_ONLY}: {op} refused" in str(error), str(error)
        with engine.connect() as conn:
            assert conn.execute(select(ReviewRow.review_id, ReviewRow.label)).all() == [
                ("r1", "x")]
    finally:
        engine.dispose()


def test_a_store_from_a_newer_docstream_is_refused_in_one_line(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(StoreError, match="at revision 9999, which this docstream does not "
                           "know"):
            upgrade(engine)
    finally:
        engine.dispose()
