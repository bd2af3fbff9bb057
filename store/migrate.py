"""Create or migrate the schema with Alembic."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from .errors import StoreError


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("docstream.store") / "migrations"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database at `engine` to `revision` (default: the newest)."""
    # The connection is handed over (migrations/env.py); the URL never goes into Alembic's
    # config, whose ConfigParser would choke on a '%' in a password and quote it.
    cfg = alembic_config()
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except SQLAlchemyError as e:
        raise StoreError(
            f"cannot migrate the store at {engine.url.render_as_string(hide_password=True)}: "
            f"{e.__class__.__name__}: {str(e).splitlines()[0]}"
        ) from e
