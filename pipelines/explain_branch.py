"""Explanations in a branch after inference, off the main path.

`--explain review` (the default) explains the results flagged needs_review, `all` every
result, `off` none; only results whose text the store keeps (`--store-text`), since an
explanation is shown over the stored text.

The branch's DoFn (`SubmitExplanations`) only enqueues: a process-wide service
(pipelines.explain_service) holds a bounded backlog and a low-priority worker process that
computes each explanation on the ORIGINAL text (model.explain, on an fp32 copy of the
weights), maps its words into the REDACTED text exactly as the store holds it
(privacy.spans: a word the policy removed is never stored), and upserts it
(store.explanations). A full backlog never blocks the job: the request is dropped and counted
(`skipped`); `docstream explain --id` computes a skipped one on demand. The batch job drains
the backlog after its last write, before it reports; a stopping stream waits a little; a
killed job loses only explanations not yet written.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Literal

import apache_beam as beam

from .explain_service import (
    DEFAULT_BACKLOG,
    ExplainRequest,
    ExplainStats,
    ProcessExplainService,
)
from .records import Outcome

ExplainMode = Literal["review", "all", "off"]
#: how long a finished batch job waits for its explanation backlog before it reports
EXPLAIN_DRAIN_S = 600.0
#: how long a stopping stream waits for it (explanations are best effort; results are not)
EXPLAIN_STOP_WAIT_S = 10.0

_SERVICES: dict[tuple[str, str], ProcessExplainService] = {}
_SERVICES_LOCK = threading.Lock()


def explain_service(sink_url: str, model_dir: str, *, n_steps: int,
                    backlog: int = DEFAULT_BACKLOG,
                    entities: bool = False) -> ProcessExplainService:
    """The process's one service for (store, model)."""
    with _SERVICES_LOCK:
        key = (sink_url, model_dir)
        if key not in _SERVICES:
            _SERVICES[key] = ProcessExplainService(sink_url, model_dir, n_steps=n_steps,
                                                   backlog=backlog, entities=entities)
        return _SERVICES[key]


def drain_services(timeout_s: float | None = None) -> dict[str, float]:
    """Drain every service of this process; the summed stats (for the run summary)."""
    with _SERVICES_LOCK:
        services = list(_SERVICES.values())
        _SERVICES.clear()
    total = ExplainStats()
    for s in services:
        st = s.drain(timeout_s)
        total.submitted += st.submitted
        total.explained += st.explained
        total.skipped += st.skipped
        total.failed += st.failed
        total.seconds += st.seconds
    return total.as_dict()


class SubmitExplanations(beam.DoFn):
    """The branch: hands the results `mode` selects to the process's ExplainService."""

    def __init__(self, sink_url: str, model_dir: str, run_id: str, mode: ExplainMode,
                 n_steps: int, backlog: int = DEFAULT_BACKLOG, entities: bool = False) -> None:
        self.sink_url, self.model_dir, self.run_id = sink_url, model_dir, run_id
        self.mode, self.n_steps, self.backlog = mode, n_steps, backlog
        self.entities = entities
        self._service: ProcessExplainService | None = None

    def setup(self) -> None:
        self._service = explain_service(self.sink_url, self.model_dir, n_steps=self.n_steps,
                                        backlog=self.backlog, entities=self.entities)

    def process(self, outcome: Outcome) -> Iterator[None]:
        if self._service is None:
            raise RuntimeError("SubmitExplanations used before setup()")
        for rec in outcome.results:
            r = rec.result
            if not rec.text or (self.mode == "review" and not r.needs_review):
                continue
            self._service.submit(ExplainRequest(
                source=r.source, doc_id=r.doc_id, model_name=r.model.name,
                model_version=r.model.version, label=r.label, text=rec.text,
                title=rec.title, social=rec.kind == "social",
                entities=tuple(r.entities) if r.entities is not None else None,
                run_id=self.run_id))
        return iter(())


def add_explain_branch(good: beam.PCollection, settings: Any, run_id: str) -> bool:
    """Hang the explanation branch on the classified outcomes when the run asks for it
    (`settings`: RunSettings); False when it does not (off, no text kept, the no-op model)."""
    if settings.explain == "off" or settings.store_text == "off" \
            or settings.model_dir == "noop":
        return False
    _ = good | "Explain" >> beam.ParDo(SubmitExplanations(
        settings.sink, settings.model_dir, run_id, settings.explain, settings.explain_steps,
        settings.explain_backlog, settings.entities))
    return True
