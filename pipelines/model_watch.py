"""Hot swap: a running job follows NAME@production in the registry without a restart.

Beam's own mechanism for this is RunInference's model-update side input (a PCollection of
ModelMetadata in a triggered global window, as WatchFilePattern emits). Prism 2.77 refuses
such a pipeline: "Unbounded GlobalWindow Triggered SideInput, are not currently supported by
Prism. Sideinputs are only ready at end of window" (apache/beam#31438). So the handler asks
the registry itself, at most every `interval_s` seconds, between batches: when the production
version has changed, it loads that artifact and swaps it in for the batches that follow. It
works the same on every runner, and a failed look-up or a broken artifact keeps the model
that is running (with a warning) instead of stopping the job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from docstream.store.engine import make_engine
from docstream.store.errors import StoreError
from docstream.store.registry import PRODUCTION, get

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Located:
    """Where NAME@production is now."""

    path: str
    label: str  # NAME@VERSION, for logs


class RegistryLocator:
    """Looks up NAME@production in the store's `model_versions` (picklable: the engine is
    made on first use, in the worker)."""

    def __init__(self, store_url: str, name: str) -> None:
        self.store_url = store_url
        self.name = name
        self._engine: Engine | None = None

    def __getstate__(self) -> dict[str, object]:
        return {"store_url": self.store_url, "name": self.name, "_engine": None}

    def __call__(self) -> Located | None:
        if self._engine is None:
            self._engine = make_engine(self.store_url)
        try:
            mv = get(self._engine, self.name, PRODUCTION)
        except StoreError:
            return None  # nothing promoted (any more): keep the running model
        return Located(mv.path, f"{mv.name}@{mv.version}")


class ModelWatch:
    """Decides, between batches, whether to switch model, and remembers what failed."""

    def __init__(self, locate: Callable[[], Located | None], interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.locate = locate
        self.interval_s = interval_s
        self.clock = clock
        self._next_check = 0.0
        self._refused: set[str] = set()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def due(self) -> bool:
        return self.clock() >= self._next_check

    def check(self, current_path: str) -> Located | None:
        """The new production artifact to load, or None (not due, unchanged, or unknown)."""
        with self._lock:
            if not self.due():
                return None
            self._next_check = self.clock() + self.interval_s
        try:
            found = self.locate()
        except Exception as e:  # a store outage must not stop inference
            log.warning("model watch: registry look-up failed (%s: %s); keeping %s",
                        e.__class__.__name__, e, current_path)
            return None
        if found is None or found.path == current_path or found.path in self._refused:
            return None
        return found

    def refuse(self, found: Located, error: Exception) -> None:
        """`found` failed to load: keep the running model, and do not try it again."""
        self._refused.add(found.path)
        log.error("model watch: %s at %s could not be loaded (%s: %s); keeping the running "
                  "model; fix the artifact and register it under a new version", found.label,
                  found.path, error.__class__.__name__, error)
