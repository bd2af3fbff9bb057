"""The thin adapter that runs docstream's model inside Beam's RunInference."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from apache_beam.ml.inference.base import ModelHandler

from docstream.model.build import build_classifier
from docstream.model.classify import DocPrediction
from docstream.model.errors import ArtifactError
from docstream.model.fixed import FixedLabelClassifier
from docstream.model.loader import load_model
from docstream.model.predictor import Precision
from docstream.schemas.classification import ModelRef

from .model_watch import ModelWatch
from .records import DocBatch, register_batch_coder

log = logging.getLogger(__name__)

NOOP_MODEL = "noop"

#: (time.monotonic() when it ended, seconds) of each `load_model` in this process, oldest
#: first: the streaming job's summary reads its model loading time here (Prism's LOOPBACK SDK
#: worker runs the handler in threads of the launching process). Hot swaps are not in it.
LOADS: deque[tuple[float, float]] = deque(maxlen=64)


class Classifies(Protocol):
    labels: list[str]

    def classify(self, docs: Sequence[Sequence[Sequence[int]]]) -> list[DocPrediction]: ...


@dataclass(frozen=True, slots=True)
class _Current:
    classifier: Classifies
    ref: ModelRef
    path: str
    #: how texts become token ids (preprocessing settings, the base's tokenizer); None: noop
    reads: tuple[str, str] | None = None


class LoadedClassifier:
    """What the handler's load_model returns: the classifier and its identity.

    RunInference keeps this object for the life of the worker; a hot swap (model_watch)
    replaces what it holds in one assignment, so a batch sees either model, never a mix.
    """

    def __init__(self, classifier: Classifies, ref: ModelRef, path: str = "",
                 reads: tuple[str, str] | None = None) -> None:
        self.current = _Current(classifier, ref, path, reads)

    @property
    def classifier(self) -> Classifies:
        return self.current.classifier

    @property
    def ref(self) -> ModelRef:
        return self.current.ref

    def swap(self, other: LoadedClassifier) -> None:
        self.current = other.current


@dataclass(frozen=True, slots=True)
class BatchPredictions:
    """Per input batch: one prediction or one error message per prepared item, in order."""

    batch: DocBatch
    predictions: list[DocPrediction | str]
    model: ModelRef


class DocstreamModelHandler(ModelHandler[DocBatch, BatchPredictions, LoadedClassifier]):
    """RunInference handler over `DocBatch` elements.

    Beam's BatchElements groups several DocBatches (up to `sort_buffer_tokens` model
    tokens); the classifier then sorts all their chunks by length and cuts token-budget
    batches (model.batching). A batch that raises is retried document by document, so a
    poison document becomes one dead letter rather than failing its neighbours.
    """

    def __init__(
        self,
        model_dir: str,
        *,
        device: str | None = None,
        precision: Precision = "auto",
        max_tokens_per_batch: int | None = None,
        review_threshold: float | None = None,
        sort_buffer_tokens: int = 32768,
        max_batch_duration_secs: float | None = None,
        watch: ModelWatch | None = None,
    ) -> None:
        # BatchElements measures batch size with element_size_fn, so max_batch_size is a
        # token count here: the sort buffer. (Beam 2.77's `max_batch_weight` is not accepted
        # by its own BatchElements.) ModelHandler.__init__ keeps these for BatchElements
        # (batch_elements_kwargs) and leaves a None duration out. Beam annotates the duration
        # as int, but its stateful BatchElements takes fractional seconds too.
        batching: dict[str, Any] = {
            "min_batch_size": 1,
            "max_batch_size": sort_buffer_tokens,
            "element_size_fn": _batch_tokens,
            "max_batch_duration_secs": max_batch_duration_secs,
        }
        super().__init__(**batching)
        self.model_dir = model_dir
        self.device = device
        self.precision: Precision = precision
        self.max_tokens_per_batch = max_tokens_per_batch
        self.review_threshold = review_threshold
        self.watch = watch

    def load_model(self) -> LoadedClassifier:
        t0 = time.monotonic()
        loaded = self._load(self.model_dir)
        end = time.monotonic()
        LOADS.append((end, end - t0))
        return loaded

    def _load(self, model_dir: str) -> LoadedClassifier:
        if model_dir == NOOP_MODEL:
            fixed = FixedLabelClassifier()
            return LoadedClassifier(fixed, ModelRef(name="noop", version="0",
                                                    weights_sha256="0" * 64), model_dir)
        loaded = load_model(model_dir)
        m = loaded.manifest
        classifier = build_classifier(
            m, loaded.module, device=self.device, precision=self.precision,
            review_threshold=self.review_threshold, max_tokens_per_batch=self.max_tokens_per_batch,
        )
        reads = (m.preprocess.model_dump_json(),
                 loaded.base.tokenizer_sha256() or str(loaded.base.path))
        return LoadedClassifier(classifier, ModelRef(name=m.name, version=m.version,
                                                     weights_sha256=m.weights_sha256), model_dir,
                                reads)

    def _maybe_switch(self, model: LoadedClassifier) -> None:
        """Between batches: load and swap in a newly promoted version (see model_watch)."""
        if self.watch is None:
            return
        found = self.watch.check(model.current.path)
        if found is None:
            return
        t0 = time.perf_counter()
        try:
            fresh = self._load(found.path)
        except Exception as e:  # a broken artifact must not stop the job
            self.watch.refuse(found, e)
            return
        reads = model.current.reads
        if reads is not None and fresh.current.reads != reads:  # the job's preprocessing is fixed
            self.watch.refuse(found, ArtifactError(
                f"{found.path} reads texts differently from the running model (another base "
                "encoder's tokenizer or other preprocessing settings); restart the job on it"))
            return
        old = model.ref
        model.swap(fresh)
        self.model_dir = found.path
        log.warning("switching model from %s@%s to %s (%s), loaded in %.1f s", old.name,
                    old.version, found.label, found.path, time.perf_counter() - t0)

    def run_inference(
        self,
        batch: Sequence[DocBatch],
        model: LoadedClassifier,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[BatchPredictions]:
        self._maybe_switch(model)
        current = model.current  # one model for the whole batch, even across a swap
        docs = [item.prepared.chunks for b in batch for item in b.items]
        try:
            flat: list[DocPrediction | str] = list(current.classifier.classify(docs))
        except Exception:  # isolate the failing document(s); see the class docstring
            log.warning("inference failed on a batch of %d docs; retrying one by one", len(docs))
            flat = [_classify_one(current.classifier, d) for d in docs]
        out: list[BatchPredictions] = []
        pos = 0
        for b in batch:
            n = len(b.items)
            out.append(BatchPredictions(b, flat[pos : pos + n], current.ref))
            pos += n
        return out

    def get_num_bytes(self, batch: Sequence[DocBatch]) -> int:
        return sum(4 * b.n_model_tokens for b in batch)

    def get_metrics_namespace(self) -> str:
        return "docstream"


register_batch_coder(BatchPredictions)


def _batch_tokens(batch: DocBatch) -> int:
    return max(batch.n_model_tokens, 1)


def _classify_one(classifier: Classifies, doc: Sequence[Sequence[int]]) -> DocPrediction | str:
    try:
        return classifier.classify([doc])[0]
    except Exception as e:  # one document's failure becomes its dead letter
        return f"{e.__class__.__name__}: {e}"
