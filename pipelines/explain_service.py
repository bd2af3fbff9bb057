"""The explanation worker behind the branch (pipelines.explain_branch).

`ProcessExplainService` (what jobs use): one worker PROCESS (spawned), at the lowest CPU
priority (nice 19) with few torch threads, so the operating system gives the job's own
inference the CPU first: the worker uses what is idle, and the main path pays for
enqueueing, not for the gradients. It loads the model's fp32 explainer (model.explain), the
run's redactor and its own store connection, and stores each explanation itself.

`ExplainService` (a thread; the explain function injected) does the same in-process, for
tests and tools.

Both keep a bounded backlog: a request that finds it full is dropped and counted (`skipped`),
never waited for.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

from docstream.privacy.redact import Redactor, default_redactor
from docstream.schemas.explanation import StoredExplanation
from docstream.store.engine import make_engine
from docstream.store.explanations import save_explanations

from .explain_request import ExplainFn, ExplainRequest, ExplainStats, stored_explanation

__all__ = ["DEFAULT_BACKLOG", "ExplainFn", "ExplainRequest", "ExplainService", "ExplainStats",
           "ProcessExplainService", "stored_explanation"]

log = logging.getLogger(__name__)

DEFAULT_BACKLOG = 256
#: the worker process's niceness: it runs on what the job leaves idle
WORKER_NICE = 19


@dataclass
class ExplainService:
    """A bounded backlog and one worker thread (see the module docstring)."""

    sink_url: str
    explain_fn: Callable[[], ExplainFn]
    backlog: int = DEFAULT_BACKLOG
    save_every: int = 8
    redactor: Redactor = field(default_factory=default_redactor)
    stats: ExplainStats = field(default_factory=ExplainStats)

    def __post_init__(self) -> None:
        self._queue: queue.Queue[ExplainRequest | None] = queue.Queue(maxsize=self.backlog)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._engine = make_engine(self.sink_url)

    def submit(self, req: ExplainRequest) -> bool:
        """Enqueue without waiting; False (counted as skipped) when the backlog is full."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="docstream-explain",
                                                daemon=True)
                self._thread.start()
            self.stats.submitted += 1
        try:
            self._queue.put_nowait(req)
            return True
        except queue.Full:
            with self._lock:
                self.stats.skipped += 1
            return False

    def _work(self) -> None:
        fn: ExplainFn | None = None
        pending: list[StoredExplanation] = []
        while True:
            try:
                req = self._queue.get(timeout=1.0 if pending else None)
            except queue.Empty:
                self._save(pending)
                continue
            if req is None:
                self._save(pending)
                self._queue.task_done()
                return
            started = time.perf_counter()
            try:
                fn = fn or self.explain_fn()
                exp = fn(req)
                if exp is not None:
                    pending.append(stored_explanation(req, exp, self.redactor,
                                                      time.perf_counter() - started))
                else:
                    with self._lock:
                        self.stats.skipped += 1
            except Exception as e:  # one bad document never stops the branch
                log.warning("could not explain %r/%r (stage explain): %s: %s; `docstream "
                            "explain --id` retries it on demand", req.source, req.doc_id,
                            e.__class__.__name__, e)
                with self._lock:
                    self.stats.failed += 1
            with self._lock:
                self.stats.seconds += time.perf_counter() - started
            if len(pending) >= self.save_every:
                self._save(pending)
            self._queue.task_done()

    def _save(self, pending: list[StoredExplanation]) -> None:
        if not pending:
            return
        try:
            save_explanations(self._engine, pending)
            with self._lock:
                self.stats.explained += len(pending)
        except Exception as e:  # best effort, unlike results
            log.warning("could not store %d explanations (stage explain): %s: %s",
                        len(pending), e.__class__.__name__, e)
            with self._lock:
                self.stats.failed += len(pending)
        pending.clear()

    def drain(self, timeout_s: float | None = None) -> ExplainStats:
        """Wait until the backlog is done (or `timeout_s`), stop the worker, return stats.
        What is still queued at the timeout is counted as skipped."""
        if self._thread is not None:
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while self._queue.unfinished_tasks:
                if deadline is not None and time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            left = self._queue.qsize()
            with self._lock:
                self.stats.skipped += left
            if left:
                log.warning("%d explanations still waiting at the end; `docstream explain "
                            "--id` computes them on demand", left)
                while not self._queue.empty():
                    self._queue.get_nowait()
                    self._queue.task_done()
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        self._engine.dispose()
        return self.stats


def _loader(sink_url: str, model_dir: str, n_steps: int,
            entities: bool = False) -> Callable[[], ExplainFn]:
    """The explain function, loaded in the worker on its first request. It explains with the
    model version that labelled the result: the run's model, or (a stream that followed a
    promotion) the registry's path of that version; None when it cannot. Long texts are cut
    into the windows the job used: at spaCy's sentences when the run extracts entities (or
    the model says `sentences: spacy`), else at preprocess.sentences' own."""

    def load() -> ExplainFn:
        from docstream.model.explain import DEFAULT_N_STEPS
        from docstream.model.explain import Explainer as _Explainer
        from docstream.store import registry
        from docstream.store.errors import StoreError

        steps = n_steps or DEFAULT_N_STEPS
        cache: dict[str, Any] = {}

        def Explainer(path: str) -> Any:
            from docstream.model.artifact import read_manifest

            starts = None
            if entities or read_manifest(path).preprocess.sentences == "spacy":
                from docstream.preprocess.nlp import load_nlp

                nlp = load_nlp(False)  # the same rule-based sentencizer the job runs first
                starts = lambda text: [s.start_char for s in nlp(text).sents]  # noqa: E731
            return _Explainer(path, n_steps=steps, sentence_starts=starts)

        def explainer_for(req: ExplainRequest) -> Any:
            if req.model_version not in cache:
                if not cache:
                    first = Explainer(model_dir)
                    cache[first.manifest.version] = first
                if req.model_version not in cache:
                    try:
                        engine = make_engine(sink_url)
                        try:
                            path = registry.get(engine, req.model_name, req.model_version).path
                        finally:
                            engine.dispose()
                        cache.clear()  # one model in memory at a time
                        cache[req.model_version] = Explainer(path)
                    except StoreError as e:
                        log.warning("cannot explain %s@%s results: %s", req.model_name,
                                    req.model_version, e)
                        return None
            return cache[req.model_version]

        def explain(req: ExplainRequest | None) -> Any:
            if req is None:  # warm-up: the run's own model
                if not cache:
                    first = Explainer(model_dir)
                    cache[first.manifest.version] = first
                return None
            explainer = explainer_for(req)
            if explainer is None:
                return None
            return explainer.explain(req.text, target=req.label, title=req.title,
                                     social=req.social)

        return explain

    return load



# -- the worker process ----------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(sink_url: str, model_dir: str, n_steps: int, threads: int,
                 entities: bool) -> None:
    """Runs once in the spawned process: lowest priority, few threads, lazy model."""
    try:
        os.nice(WORKER_NICE)
    except OSError as e:  # not allowed here: still correct, only less polite
        log.debug("could not lower the explainer's priority: %s", e)
    os.environ["DOCSTREAM_TORCH_THREADS"] = str(threads)
    # no progress bars from the worker on the job's terminal
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch

    torch.set_num_threads(threads)
    _WORKER.update(sink_url=sink_url, load=_loader(sink_url, model_dir, n_steps, entities))


def _warm() -> None:
    """In the worker: load the model, the redactor and the store connection now (the job
    submits this first, so loading overlaps the job's own work instead of following it)."""
    if "fn" not in _WORKER:
        _WORKER["redactor"] = default_redactor()
        _WORKER["engine"] = make_engine(_WORKER["sink_url"])
        _WORKER["fn"] = _WORKER["load"]()
        _WORKER["fn"](None)  # builds the explainer of the run's model


def _explain_and_store(req: ExplainRequest) -> tuple[str, float]:
    """In the worker: explain, map into the stored text, upsert. ("explained" | "skipped" |
    "failed", seconds)."""
    started = time.perf_counter()
    try:
        _warm()
        exp = _WORKER["fn"](req)
        if exp is None:
            return "skipped", time.perf_counter() - started
        stored = stored_explanation(req, exp, _WORKER["redactor"], time.perf_counter() - started)
        save_explanations(_WORKER["engine"], [stored])
        return "explained", time.perf_counter() - started
    except Exception as e:  # one bad document never stops the worker
        log.warning("could not explain %r/%r (stage explain): %s: %s; `docstream explain "
                    "--id` retries it on demand", req.source, req.doc_id,
                    e.__class__.__name__, e)
        return "failed", time.perf_counter() - started


class ProcessExplainService:
    """The job's explanation worker: a spawned low-priority process (module docstring)."""

    def __init__(self, sink_url: str, model_dir: str, *, n_steps: int,
                 backlog: int = DEFAULT_BACKLOG, threads: int | None = None,
                 entities: bool = False) -> None:
        self.backlog = backlog
        self.stats = ExplainStats()
        self._lock = threading.Lock()
        self._pending: set[Future[tuple[str, float]]] = set()
        threads = threads or max(1, (os.cpu_count() or 2) // 4)
        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=get_context("spawn"), initializer=_init_worker,
            initargs=(sink_url, model_dir, n_steps, threads, entities))
        self._warming = self._pool.submit(_warm)
        self._warming.add_done_callback(self._warmed)

    def _warmed(self, future: Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.warning("the explanation worker could not load: %s; results are not explained "
                        "(`docstream explain --id` computes one on demand)", future.exception())

    def submit(self, req: ExplainRequest) -> bool:
        """Hand `req` to the worker without waiting; False (skipped) when the backlog is
        full."""
        with self._lock:
            self.stats.submitted += 1
            if len(self._pending) >= self.backlog:
                self.stats.skipped += 1
                return False
            future = self._pool.submit(_explain_and_store, req)
            self._pending.add(future)
        future.add_done_callback(self._done)
        return True

    def _done(self, future: Future[tuple[str, float]]) -> None:
        with self._lock:
            self._pending.discard(future)
            if future.cancelled():
                self.stats.skipped += 1
                return
            try:
                outcome, seconds = future.result()
            except Exception as e:  # the worker process died
                log.warning("the explanation worker failed: %s: %s", e.__class__.__name__, e)
                outcome, seconds = "failed", 0.0
            setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
            self.stats.seconds += seconds

    def drain(self, timeout_s: float | None = None) -> ExplainStats:
        """Wait for the backlog (at most `timeout_s`); what is left is cancelled (skipped)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            with self._lock:
                left = len(self._pending)
            if not left or (deadline is not None and time.monotonic() > deadline):
                break
            time.sleep(0.05)
        if left:
            log.warning("%d explanations still waiting at the end; `docstream explain --id` "
                        "computes them on demand", left)
        self._pool.shutdown(wait=True, cancel_futures=True)
        return self.stats
