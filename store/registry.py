"""The model registry: `model_versions` in the same store as the results."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .errors import StoreError
from .tables import ModelVersionRow

PRODUCTION = "production"
ARCHIVED = "archived"


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    path: str
    weights_sha256: str
    stage: str
    metrics: dict[str, Any] | None
    registered_at: datetime
    promoted_at: datetime | None


def _row(r: Any) -> ModelVersion:
    return ModelVersion(r.name, r.version, r.path, r.weights_sha256, r.stage, r.metrics,
                        r.registered_at, r.promoted_at)


def register(engine: Engine, *, name: str, version: str, path: str, weights_sha256: str,
             metrics: dict[str, Any] | None = None) -> ModelVersion:
    """Add (or refresh the path of) NAME@VERSION. Refuses other weights under the same name."""
    now = datetime.now(UTC)
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    with engine.begin() as conn:
        existing = conn.execute(select(ModelVersionRow.weights_sha256).where(
            ModelVersionRow.name == name, ModelVersionRow.version == version)).scalar_one_or_none()
        if existing is not None and existing != weights_sha256:
            raise StoreError(f"{name}@{version} is already registered with other weights "
                             f"({existing[:12]}…); give the new artifact a new version")
        stmt = insert(ModelVersionRow.__table__).values(
            name=name, version=version, path=path, weights_sha256=weights_sha256, stage="none",
            metrics=metrics, registered_at=now)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["name", "version"], set_={"path": stmt.excluded.path,
                                                      "metrics": stmt.excluded.metrics}))
    return get(engine, name, version)


def get(engine: Engine, name: str, version: str) -> ModelVersion:
    """NAME@VERSION, where VERSION may be `production`."""
    stmt = select(ModelVersionRow).where(ModelVersionRow.name == name)
    if version == PRODUCTION:
        stmt = stmt.where(ModelVersionRow.stage == PRODUCTION)
    else:
        stmt = stmt.where(ModelVersionRow.version == version)
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        known = ", ".join(f"{m.name}@{m.version}" for m in list_versions(engine)) or "none"
        raise StoreError(f"no model {name}@{version} in the registry (registered: {known}); "
                         "use `docstream model register` / `promote`")
    return _row(row)


def list_versions(engine: Engine) -> list[ModelVersion]:
    with engine.connect() as conn:
        rows = conn.execute(select(ModelVersionRow).order_by(
            ModelVersionRow.name, ModelVersionRow.registered_at)).all()
    return [_row(r) for r in rows]


def promote(engine: Engine, name: str, version: str) -> ModelVersion:
    """Make NAME@VERSION the production version; the previous one is archived."""
    get(engine, name, version)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(update(ModelVersionRow).where(
            ModelVersionRow.name == name, ModelVersionRow.stage == PRODUCTION,
            ModelVersionRow.version != version).values(stage=ARCHIVED))
        conn.execute(update(ModelVersionRow).where(
            ModelVersionRow.name == name, ModelVersionRow.version == version).values(
            stage=PRODUCTION, promoted_at=now))
    return get(engine, name, version)
