"""The Alembic history is one straight line: one base, one head, no branches, no merges.

Two engineers each adding a migration on top of the same revision give two heads, and
`upgrade head` then fails at the start of every run; this catches it at test time. And the
tables of store/tables.py must be what the migrations build, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from docstream.store.engine import make_engine
from docstream.store.migrate import alembic_config, upgrade
from docstream.store.tables import Base


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def test_migrations_load_from_the_package() -> None:
    scripts = _scripts()
    package_dir = Path(str(resources.files("docstream.store") / "migrations"))
    assert Path(scripts.dir).resolve() == package_dir.resolve()
    assert (package_dir / "script.py.mako").is_file()


def test_exactly_one_head_and_one_base() -> None:
    scripts = _scripts()
    heads = scripts.get_heads()
    assert len(heads) == 1, f"Alembic history has {len(heads)} heads {heads}: rebase the newer " \
                            "migration's down_revision onto the other head (no merge migrations)"
    bases = scripts.get_bases()
    assert len(bases) == 1, f"Alembic history has {len(bases)} bases {bases}"


def test_history_is_linear() -> None:
    scripts = _scripts()
    revisions = list(scripts.walk_revisions())  # head first
    for rev in revisions:
        assert not rev.is_merge_point, f"{rev.revision} merges {rev.down_revision}: keep one line"
        assert not rev.is_branch_point, f"{rev.revision} has several children {rev.nextrev}"
    # Following down_revision from the head visits every revision exactly once.
    chain: list[str] = []
    current = scripts.get_current_head()
    while current is not None:
        chain.append(current)
        down = scripts.get_revision(current).down_revision
        assert not isinstance(down, tuple | list), f"{current} has several parents {down}"
        current = down
    assert sorted(chain) == sorted(r.revision for r in revisions)
    assert len(set(chain)) == len(chain)


def test_models_match_the_migrations(db_url: str) -> None:
    """store/tables.py and the migrations describe the same schema, on both stores; the
    newest revision also downgrades and upgrades again."""
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    cfg = alembic_config()
    head = _scripts().get_current_head()
    down = _scripts().get_revision(head).down_revision
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, str(down))
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head
    engine.dispose()
