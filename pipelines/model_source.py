"""Which model a run uses: a path, `noop`, or NAME@VERSION / NAME@production from the registry."""

from __future__ import annotations

import os

from docstream.store.engine import check_reachable, make_engine
from docstream.store.migrate import upgrade
from docstream.store.registry import get

from .handler import NOOP_MODEL


def is_registry_ref(spec: str) -> bool:
    return "@" in spec and not os.path.exists(spec)


def production_name(spec: str) -> str | None:
    """NAME when `spec` is NAME@production (a job that should follow promotions), else None.

    >>> production_name("news-topic@production"), production_name("news-topic@1.0.0")
    ('news-topic', None)
    """
    if not is_registry_ref(spec):
        return None
    name, _, version = spec.partition("@")
    return name if version == "production" else None


def resolve_model(spec: str, store_url: str) -> str:
    """The artifact directory for `spec`, looking NAME@VERSION up in the store's registry."""
    if spec == NOOP_MODEL or not is_registry_ref(spec):
        return spec
    name, _, version = spec.partition("@")
    engine = make_engine(store_url)
    try:
        check_reachable(engine)
        upgrade(engine)
        return get(engine, name, version).path
    finally:
        engine.dispose()
