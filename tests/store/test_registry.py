"""The model registry on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import pytest

from docstream.pipelines.model_source import resolve_model
from docstream.store import registry
from docstream.store.engine import make_engine
from docstream.store.errors import StoreError
from docstream.store.migrate import upgrade


@pytest.fixture()
def engine(db_url: str):
    e = make_engine(db_url)
    upgrade(e)
    yield e
    e.dispose()


def test_register_list_promote(engine, db_url: str) -> None:
    registry.register(engine, name="m", version="1", path="/a", weights_sha256="a" * 64,
                      metrics={"accuracy": 0.9})
    registry.register(engine, name="m", version="2", path="/b", weights_sha256="b" * 64)
    assert [v.version for v in registry.list_versions(engine)] == ["1", "2"]
    with pytest.raises(StoreError, match="no model m@production"):
        registry.get(engine, "m", "production")
    registry.promote(engine, "m", "1")
    assert registry.get(engine, "m", "production").path == "/a"
    registry.promote(engine, "m", "2")
    assert registry.get(engine, "m", "production").version == "2"
    assert registry.get(engine, "m", "1").stage == "archived"
    assert resolve_model("m@production", db_url) == "/b"
    assert resolve_model("m@1", db_url) == "/a"


def test_same_version_other_weights_is_refused(engine) -> None:
    registry.register(engine, name="m", version="1", path="/a", weights_sha256="a" * 64)
    registry.register(engine, name="m", version="1", path="/moved", weights_sha256="a" * 64)
    assert registry.get(engine, "m", "1").path == "/moved"
    with pytest.raises(StoreError, match="new version"):
        registry.register(engine, name="m", version="1", path="/c", weights_sha256="c" * 64)


def test_unknown_model_names_what_exists(engine) -> None:
    registry.register(engine, name="m", version="1", path="/a", weights_sha256="a" * 64)
    with pytest.raises(StoreError, match="registered: m@1"):
        registry.promote(engine, "m", "9")
