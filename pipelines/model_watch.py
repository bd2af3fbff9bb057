"""Hot-swap: watch the registry and feed RunInference's model-update side input.

A running stream polls the registry every `interval` seconds for NAME@production; when the
production version changes, it emits a ModelMetadata, and RunInference reloads the model
(Beam's documented "automatic model refresh" mechanism, as WatchFilePattern does for files).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.coders import StrUtf8Coder
from apache_beam.ml.inference.base import ModelMetadata
from apache_beam.transforms import trigger, window
from apache_beam.transforms.periodicsequence import PeriodicImpulse
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

from store.engine import make_engine
from store.errors import StoreError
from store.registry import get


class _LookupProduction(beam.DoFn):
    def __init__(self, store_url: str, name: str) -> None:
        self.store_url = store_url
        self.name = name

    def setup(self) -> None:
        self.engine = make_engine(self.store_url)

    def process(self, _tick: Any) -> Iterator[tuple[str, tuple[str, str]]]:
        try:
            mv = get(self.engine, self.name, "production")
        except StoreError:
            return  # nothing promoted yet: keep the model the job started with
        yield "model", (mv.path, f"{mv.name}@{mv.version}")

    def teardown(self) -> None:
        self.engine.dispose()


class _OnlyChanges(beam.DoFn):
    LAST = ReadModifyWriteStateSpec("last", StrUtf8Coder())

    def __init__(self, initial_path: str) -> None:
        self.initial_path = initial_path

    def process(self, element: tuple[str, tuple[str, str]],
                last: Any = beam.DoFn.StateParam(LAST)) -> Iterator[ModelMetadata]:
        path, name = element[1]
        previous = last.read() or self.initial_path
        if path != previous:
            last.write(path)
            yield ModelMetadata(model_id=path, model_name=name)


class WatchRegistry(beam.PTransform):
    """PCollection[ModelMetadata] announcing each newly promoted version of `name`."""

    def __init__(self, store_url: str, name: str, initial_path: str,
                 interval_s: float = 10.0) -> None:
        super().__init__()
        self.store_url = store_url
        self.name = name
        self.initial_path = initial_path
        self.interval_s = interval_s

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            pbegin
            | "Tick" >> PeriodicImpulse(fire_interval=self.interval_s)
            | "Lookup" >> beam.ParDo(_LookupProduction(self.store_url, self.name))
            | "OnlyChanges" >> beam.ParDo(_OnlyChanges(self.initial_path))
            | "GlobalWindow" >> beam.WindowInto(
                window.GlobalWindows(),
                trigger=trigger.Repeatedly(trigger.AfterProcessingTime(1)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING)
        )
