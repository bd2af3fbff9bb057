"""Passwords never appear in an error message: every path in store/ that puts a database
URL into a message, with a URL whose password is s3cr3t-pw."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from docstream.store.engine import check_reachable, make_engine, make_readonly_engine
from docstream.store.errors import StoreError, StoreUnavailableError
from docstream.store.masking import mask_secrets, mask_url
from docstream.store.migrate import upgrade
from docstream.store.writer import StoreWriter
from tests.store.test_transient import batch, closed_port

PASSWORD = "s3cr3t-pw"


@pytest.mark.parametrize(("text", "masked"), [
    (f"postgresql+psycopg://app:{PASSWORD}@db:5432/posts",
     "postgresql+psycopg://app:***@db:5432/posts"),
    (f"postgresql://app:p@ss{PASSWORD}@db/posts", "postgresql://app:***@db/posts"),
    (f"postgresql+psycopg://:{PASSWORD}@db/posts", "postgresql+psycopg://:***@db/posts"),
    (f"postgresql+psycopg://app:{PASSWORD}@db:port/posts",  # does not parse
     "postgresql+psycopg://app:***@db:port/posts"),
    (f"app:{PASSWORD}@db/posts", "app:***@db/posts"),  # no scheme: does not parse either
    (f"host=db user=app password={PASSWORD} dbname=posts",
     "host=db user=app password=*** dbname=posts"),
    ("postgresql+psycopg://app@db/posts", "postgresql+psycopg://app@db/posts"),
    ("sqlite:///docstream.db", "sqlite:///docstream.db"),
])
def test_mask_url(text: str, masked: str) -> None:
    assert mask_url(text) == masked
    if "://" in text or "password=" in text:  # also inside a longer message
        assert PASSWORD not in mask_secrets(f"failed at {text!r}: boom")


def _raises_masked(call: Callable[[], object], error: type[Exception] = StoreError) -> str:
    with pytest.raises(error) as caught:
        call()
    text = f"{caught.value}"
    assert PASSWORD not in text and "\n" not in text, text
    return text


@pytest.mark.parametrize("make", [make_engine, make_readonly_engine])
@pytest.mark.parametrize(("url", "words"), [
    (f"app:{PASSWORD}@db/posts", "bad database URL"),
    (f"postgresql+psycopg://app:{PASSWORD}@db:port/posts", "bad database URL"),
    (f"mysql://app:{PASSWORD}@db/posts", "unsupported database"),
    (f"postgresql+nosuchdriver://app:{PASSWORD}@db/posts", "cannot open the database"),
])
def test_engine_messages_mask_the_password(make: Callable[[str], object], url: str,
                                           words: str) -> None:
    assert words in _raises_masked(lambda: make(url))


def test_unreachable_database_messages_mask_the_password() -> None:
    url = f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:{closed_port()}/posts"
    engine = make_engine(url)
    assert "***" in _raises_masked(lambda: check_reachable(engine), StoreUnavailableError)
    assert "***" in _raises_masked(lambda: StoreWriter(engine).write(batch()),
                                   StoreUnavailableError)
    assert "cannot migrate" in _raises_masked(lambda: upgrade(engine))


def test_wrong_database_message_masks_the_password(postgres_server: str) -> None:
    server = make_engine(postgres_server).url
    engine = make_engine(f"postgresql+psycopg://postgres:{PASSWORD}@{server.host}:"
                         f"{server.port}/no_such_db")
    assert "does not exist" in _raises_masked(lambda: check_reachable(engine))


def test_migrate_with_a_percent_in_the_password() -> None:
    url = f"postgresql+psycopg://app:{PASSWORD}%25x@127.0.0.1:{closed_port()}/posts"
    _raises_masked(lambda: upgrade(make_engine(url)))
