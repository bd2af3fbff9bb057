"""The batch job: JSON Lines files → parse → spaCy → RunInference → SQL store."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult
from sqlalchemy.exc import SQLAlchemyError

from docstream.errors import DocstreamError
from docstream.model.artifact import read_manifest
from docstream.model.encoder import BaseEncoder
from docstream.model.loader import artifact_base
from docstream.preprocess.config import PreprocessConfig
from docstream.store.audit_chain import run_heads
from docstream.store.engine import check_reachable, make_engine
from docstream.store.errors import StoreError, StoreUnavailableError
from docstream.store.migrate import upgrade
from docstream.store.runs import count_run, finish_run, start_run

from .explain_branch import EXPLAIN_DRAIN_S, add_explain_branch, drain_services
from .file_source import ReadJsonLines, count_lines, expand_sources
from .handler import NOOP_MODEL, BatchPredictions, DocstreamModelHandler
from .model_watch import ModelWatch
from .options import RunSettings
from .records import DocBatch, Outcome, ParsedBatch
from .sink import WriteOutcomes, written_inputs
from .stages import FailedInferenceToOutcome, ParseBatch, PreprocessBatch, ToOutcome
from .summary import RunSummary

log = logging.getLogger(__name__)


def preprocess_config_for(model_dir: str) -> PreprocessConfig:
    if model_dir == NOOP_MODEL:
        return PreprocessConfig()
    return read_manifest(model_dir).preprocess  # fails fast on a bad artifact


def base_encoder_for(model_dir: str) -> BaseEncoder | None:
    """The artifact's base encoder, whose tokenizer preprocessing uses (None: the bundled)."""
    if model_dir == NOOP_MODEL:
        return None
    return artifact_base(read_manifest(model_dir), Path(model_dir))


def beam_options(settings: RunSettings, streaming: bool = False) -> PipelineOptions:
    args = [f"--runner={settings.runner}"]
    if settings.runner == "DirectRunner":
        args += ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
    if streaming:
        args.append("--streaming")
    return PipelineOptions([*args, *settings.beam_args])


def build_model_stages(
    inputs: beam.PCollection, settings: RunSettings, pre_config: PreprocessConfig,
    max_batch_duration_secs: float | None = None,
    watch: ModelWatch | None = None,
) -> tuple[beam.PCollection, beam.PCollection]:
    """RawBatch → Outcome: parse, preprocess, classify; every input ends in one outcome.

    Returns two branches of Outcomes: the classified batches (with their per-document dead
    letters) and the rare batches whose inference raised (all dead letters). They are kept
    apart on purpose: a Flatten before the writer makes Beam's portable runner hold every
    result until inference ends, so a batch job would write nothing until its last batch.
    Callers apply the writer to each branch (see `for_each_branch`).

    `watch` (streaming): follow NAME@production in the registry and swap in a newly promoted
    model without a restart (pipelines.model_watch).
    """
    handler = DocstreamModelHandler(
        settings.model_dir, device=settings.device, precision=settings.precision,
        review_threshold=settings.review_threshold,
        max_batch_duration_secs=max_batch_duration_secs, watch=watch,
    )
    docs = (
        inputs
        | "Parse" >> beam.ParDo(ParseBatch()).with_output_types(ParsedBatch)
        | "Preprocess" >> beam.ParDo(PreprocessBatch(pre_config, settings.entities,
                                                     base_encoder_for(settings.model_dir)))
        .with_output_types(DocBatch)
    )
    inference = RunInference(handler)
    predicted, dlq = docs | "Classify" >> inference.with_exception_handling()
    # RunInference declares no output type, so Beam would size-sample its elements by
    # pickling them (milliseconds per batch); typing the PCollection selects BatchCoder.
    predicted.element_type = BatchPredictions
    good = (predicted | "ToOutcome" >> beam.ParDo(ToOutcome(settings.store_text))
            .with_output_types(Outcome))
    bad = (dlq.failed_inferences
           | "FailedToOutcome" >> beam.ParDo(FailedInferenceToOutcome()).with_output_types(Outcome))
    return good, bad


def for_each_branch(
    branches: tuple[beam.PCollection, ...], label: str, transform: beam.PTransform,
) -> tuple[beam.PCollection, ...]:
    """Apply `transform` to every branch, labelled `label`, `label[1]`, …"""
    return tuple(
        b | (label if i == 0 else f"{label}[{i}]") >> transform for i, b in enumerate(branches)
    )


def startup_seconds(result: PipelineResult) -> float:
    """Seconds spent loading the model, from RunInference's `load_model_latency_milli_secs`.

    The summary's docs/s leaves this out, so that it measures processing; the wall time
    is reported beside it.
    """
    try:
        metrics = result.metrics().query(MetricsFilter().with_namespace("docstream"))
    except (AttributeError, NotImplementedError):
        return 0.0
    load_ms = 0.0
    for d in metrics["distributions"]:
        if d.key.metric.name == "load_model_latency_milli_secs" and d.committed:
            load_ms = max(load_ms, float(d.committed.max))
    return load_ms / 1000.0


class _DropReportedErrors(logging.Filter):
    """Beam logs a DoFn's exception with its traceback before re-raising it; ours are
    reported by the CLI in one line, so their traceback is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DocstreamError)


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    beam_log = logging.getLogger("apache_beam.runners.common")
    drop = _DropReportedErrors()
    beam_log.addFilter(drop)
    try:
        yield
    finally:
        beam_log.removeFilter(drop)


def run_batch(settings: RunSettings) -> RunSummary:
    """Run the batch job to completion and return its summary.

    The store must be reachable at the start (else one line, at once). A store outage
    mid-run is waited out for `store_wait_s`; past that the job stops with one line that
    says how much was written and how to finish: rerun with the same run id (results are
    upserted and audit records keyed by run and position, so nothing doubles).
    """
    files = expand_sources(settings.sources)
    read = ReadJsonLines(files, settings.lines_per_element)
    return run_inputs(settings, read, count_lines(files), " ".join(settings.sources))


def run_inputs(settings: RunSettings, read: beam.PTransform, total: int,
               source: str) -> RunSummary:
    """The batch job over any PTransform that yields RawBatches (`total` inputs in all)."""
    pre_config = preprocess_config_for(settings.model_dir)
    engine = make_engine(settings.sink)
    try:
        check_reachable(engine)
        upgrade(engine)
        start_run(engine, settings.run_id, source, settings.model_dir)
    except BaseException:
        engine.dispose()
        raise
    t0 = time.perf_counter()
    status = "failed"
    startup = 0.0
    try:
        p = beam.Pipeline(options=beam_options(settings))
        outcomes = build_model_stages(p | "Read" >> read, settings, pre_config)
        explaining = add_explain_branch(outcomes[0], settings, settings.run_id)
        for_each_branch(outcomes, "Write", beam.ParDo(WriteOutcomes(
            settings.sink, settings.run_id, total=total, progress=settings.progress,
            store_wait_s=settings.store_wait_s)))
        with _one_line_errors():
            try:
                result = p.run()
                result.wait_until_finish()
            except StoreUnavailableError as e:
                written = written_inputs(settings.run_id)
                raise StoreUnavailableError(
                    f"{str(e).split(' [while running')[0]}. The job stopped after writing "
                    f"{written:,} of {total:,} inputs (run {settings.run_id}); when the store "
                    f"is back, run the same command with --run-id {settings.run_id} to finish: "
                    "what was written is upserted, not doubled") from e
        startup = startup_seconds(result)
        status = "done"
    finally:
        # the job's time ends with its last write; the explanation backlog drains after it
        seconds = time.perf_counter() - t0
        explained = drain_services(EXPLAIN_DRAIN_S) if explaining else {}
        try:
            summary = RunSummary(run_id=settings.run_id, seconds=seconds,
                                 startup_seconds=startup, explanations=explained,
                                 audit_heads=[h.model_dump() for h in
                                              run_heads(engine, settings.run_id)],
                                 **asdict(count_run(engine, settings.run_id)))
            finish_run(engine, settings.run_id, status, summary.as_dict())
        except (StoreError, SQLAlchemyError) as e:
            if status == "done":
                raise
            log.warning("could not record the run's end in the store: %s", e)
        finally:
            engine.dispose()
    return summary
