"""The streaming job: Kafka → parse → spaCy → RunInference → SQL store, until stopped.

Shape: streaming.source reads each partition with its own unbounded restriction and emits
one element per poll; Beam fuses everything after it into the same stage, so a poll's
posts are parsed, preprocessed, classified (RunInference batches them within the bundle),
copied to the dead-letter topic and written before that partition is polled again. That is
also the flow control: at most one poll (`max_records`) per partition is in flight, and a
backlog only makes the polls fuller (and the model's batches bigger), up to a poll's token
budget (`--poll-tokens`, default 8 model batches: 32,768 estimated tokens on CPU): a poll
of long documents is cut there, so a result is written every couple of seconds of model
time, not every `max_records` long documents (streaming.source).

Delivery: each poll batch of a partition covers offsets [start, end) (streaming.source);
its results, dead letters, audit records AND the partition's new contiguous position are
written in ONE store transaction (pipelines.sink.WriteOutcomes). A restart reads those
positions back from the store and resumes there, so a kill at any moment loses nothing and
— rows being keyed by post, audit records by (run id, position) — doubles nothing. Dead
letters are copied to `<topic>.dlq` BEFORE that transaction (at-least-once: a crash in
between republishes them). Positions are also committed to the Kafka consumer group,
for lag tools only.

Stopping (SIGINT/SIGTERM): the sources stop polling, the batches already read are written,
then the job is cancelled and a summary returned. Without a drain (kill -9) the same
transactions make the restart exact.

Metrics (`--metrics-port`): pipelines.metrics; the exporter runs in this process, and the
DoFns count into the same objects because Prism's LOOPBACK SDK worker runs them in threads
of this process.

Beside this module: stream_options (knobs, Beam options), stream_fns (the DoFns), prism
(finding and stopping Prism), reporter (lag lines), shutdown (signals), metrics
(Prometheus); the `runs` rows are kept by docstream.store.runs.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PortableOptions
from apache_beam.runners.runner import PipelineState
from sqlalchemy import Engine

from docstream.errors import ConfigError
from docstream.store.audit_chain import run_heads
from docstream.store.engine import check_reachable, make_engine
from docstream.store.migrate import upgrade
from docstream.store.offsets import load_positions
from docstream.store.runs import count_run, finish_run, start_run
from docstream.streaming.admin import ensure_topic
from docstream.streaming.dlq import dlq_topic
from docstream.streaming.errors import StreamingError
from docstream.streaming.flow import InFlight
from docstream.streaming.source import ReadFromKafkaPartitions
from docstream.streaming.url import KafkaUrl, parse_kafka_url

from .batch import build_model_stages, for_each_branch, preprocess_config_for
from .explain_branch import EXPLAIN_STOP_WAIT_S, add_explain_branch, drain_services
from .handler import LOADS, NOOP_MODEL
from .metrics import Exporter, MetricsConfig, default_worker, forget, job_metrics, model_identity
from .model_watch import ModelWatch, RegistryLocator
from .options import RunSettings
from .outage import Outage
from .prism import stop_prism
from .records import RawBatch
from .reporter import Reporter
from .shutdown import StopSignals, quiet_shutdown_logs
from .stream_fns import (
    KafkaBatchToRaw,
    MarkDone,
    PublishDeadLetters,
    StreamWriteOutcomes,
    WriteClock,
)
from .stream_options import StreamOptions, poll_tokens_for, stream_pipeline_options
from .summary import StreamSummary

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------- helpers


def kafka_url_of(sources: Sequence[str]) -> KafkaUrl:
    urls = [parse_kafka_url(s) for s in sources]
    first = urls[0]
    for u in urls[1:]:
        if u.servers != first.servers or u.group != first.group:
            raise ConfigError("several kafka:// sources must name the same brokers and group; "
                              "list the topics in one URL: kafka://HOST:PORT/T1,T2?group=NAME")
    topics = tuple(dict.fromkeys(t for u in urls for t in u.topics))
    return KafkaUrl(servers=first.servers, topics=topics, group=first.group)


def stream_run_id(group: str) -> str:
    """One run id per consumer group, so a restart's replay never doubles the audit log."""
    return f"stream-{group}"[:64]


# ----------------------------------------------------------------------------------- run


def build_stream(p: beam.Pipeline, read: ReadFromKafkaPartitions, settings: RunSettings,
                 options: StreamOptions, url: KafkaUrl, run_id: str, gate: InFlight,
                 metrics: MetricsConfig | None = None, clock: WriteClock | None = None) -> None:
    """Kafka (`read`, which holds the resolved start offsets) → model → DLQ topic → store;
    with `metrics`, the DoFns feed the job's Prometheus metrics (pipelines.metrics); with
    `clock`, the writer notes when inputs were committed (the summary's timings)."""
    pre_config = preprocess_config_for(settings.model_dir)
    batches = p | "Read" >> read
    raw = batches | "ToRaw" >> beam.ParDo(KafkaBatchToRaw(metrics)).with_output_types(RawBatch)
    watch = None
    if options.watch_model:
        watch = ModelWatch(RegistryLocator(settings.sink, options.watch_model),
                           interval_s=options.watch_interval_s)
    outcomes = build_model_stages(
        raw, settings, pre_config,
        max_batch_duration_secs=options.flush_secs if options.inference_timer else None,
        watch=watch)
    add_explain_branch(outcomes[0], settings, run_id)
    if options.dead_letter_topic:
        outcomes = for_each_branch(outcomes, "DeadLetterTopic", beam.ParDo(
            PublishDeadLetters(url.bootstrap, run_id)))
    written = for_each_branch(outcomes, "Write", beam.ParDo(StreamWriteOutcomes(
        settings.sink, run_id, consumer_group=url.group, start_positions=read.start_offsets,
        progress=False, store_wait_s=options.store_wait_s, gate=gate, metrics=metrics,
        clock=clock)))
    for_each_branch(written, "Done", beam.ParDo(MarkDone(gate, metrics)))


def run_stream(settings: RunSettings, options: StreamOptions | None = None) -> StreamSummary:
    """Run the streaming job until SIGINT/SIGTERM (or options.max_seconds); return a summary."""
    options = options or StreamOptions()
    url = kafka_url_of(settings.sources)
    run_id = stream_run_id(url.group)
    with StopSignals() as stop:
        engine = make_engine(settings.sink)
        try:
            return _run(settings, options, url, run_id, engine, stop)
        finally:
            engine.dispose()


def _run(settings: RunSettings, options: StreamOptions, url: KafkaUrl, run_id: str,
         engine: Engine, stop: StopSignals) -> StreamSummary:
    check_reachable(engine)  # one line at once, rather than a wait for a store never seen
    upgrade(engine)
    pipeline_options = stream_pipeline_options(settings, options)  # finds Prism, or fails
    env = pipeline_options.view_as(PortableOptions).environment_type
    use_gate = settings.runner == "PrismRunner" and env in (None, "LOOPBACK")
    if not use_gate:
        log.warning("the in-flight limit needs the in-process (LOOPBACK) SDK worker; with "
                    "runner %s and environment %s, memory is bounded only by the runner",
                    settings.runner, env)
    gate = InFlight(f"{run_id}-{uuid.uuid4().hex[:8]}", options.max_in_flight)
    # The source resolves where each partition starts, once: the stored positions, else the
    # partition's first retained offset.
    read = ReadFromKafkaPartitions(
        url.bootstrap, list(url.topics), load_positions(engine, url.group),
        poll_timeout_ms=options.poll_timeout_ms, max_records=options.max_records,
        idle_delay_s=options.idle_delay_s, gate=gate if use_gate else None,
        poll_tokens=poll_tokens_for(options, settings.device))
    starts = read.start_offsets
    if options.dead_letter_topic:
        for topic in url.topics:
            ensure_topic(url.bootstrap, dlq_topic(topic), partitions=1)
    metrics = None
    if options.metrics_port is not None:
        metrics = MetricsConfig(options.metrics_worker or default_worker(), os.getpid())
        if not use_gate:
            log.warning("--metrics-port: the DoFns count in the SDK worker processes of "
                        "environment %s, which this exporter does not see; only the lag and "
                        "the store outage are exported", env)
    clock = WriteClock(gate.name)
    p = beam.Pipeline(options=pipeline_options)
    build_stream(p, read, settings, options, url, run_id, gate, metrics, clock)

    reporter = Reporter(engine, url, starts, gate, options.report_every_s, settings.progress)
    # binds the port: one already taken fails here, before the run is recorded
    exporter = _exporter(metrics, options, settings, reporter, gate if use_gate else None)
    since = datetime.now(UTC)
    try:
        start_run(engine, run_id, str(url), settings.model_dir)
    except BaseException:
        _close(exporter)
        raise
    log.info("stream %s from %s", run_id, {f"{t}/{p}": o for (t, p), o in starts.items()})
    t0 = time.monotonic()
    status = "failed"
    result = None
    try:
        if stop.event.is_set():
            status = "stopped"
        else:
            result = stop.run(p)
            status = _watch(result, stop, reporter, options, t0, exporter, clock)
            _drain(result, gate, use_gate, options)
            stop_prism()
    finally:
        seconds = time.monotonic() - t0
        # a stopping stream does not wait long for explanations (they are best effort)
        explained = drain_services(min(options.drain_timeout_s, EXPLAIN_STOP_WAIT_S))
        reporter.tick(force=True)
        _close(exporter)
        reporter.close()
        counts = count_run(engine, run_id, since)
        timings = _timings(clock, t0)
        summary = StreamSummary(
            run_id=run_id, group=url.group, topics=list(url.topics), seconds=seconds,
            status=status, lag=reporter.lag, startup_seconds=timings["first_result_s"] or 0.0,
            positions={f"{t}/{p}": o for (t, p), o in sorted(reporter.positions.items())},
            audit_heads=[h.model_dump() for h in run_heads(engine, run_id, since)],
            explanations=explained, **timings, **asdict(counts))
        finish_run(engine, run_id, summary.status, summary.as_dict())
        gate.reset()
        clock.reset()
    if status == "failed":
        raise StreamingError(f"the streaming job {run_id} failed (see the log above); run it "
                             "again: it resumes from the positions stored with the results")
    return summary


def _model_load(t0: float) -> tuple[float, float] | None:
    """(seconds loading, seconds from `t0` until loaded) of this job's first model load."""
    for end, seconds in list(LOADS):
        if end >= t0:
            return seconds, end - t0
    return None


def _timings(clock: WriteClock, t0: float) -> dict[str, Any]:
    """The summary's model_load_s, model_ready_s, first_result_s, steady_docs_per_s and
    write_units (None where not measured)."""
    load = _model_load(t0)
    written = clock.state()
    return {
        "model_load_s": load[0] if load else None,
        "model_ready_s": load[1] if load else None,
        "first_result_s": (written.first_at - t0) if written else None,
        "steady_docs_per_s": written.steady_docs_per_s() if written else None,
        "write_units": written.units if written else 0,
    }


def _exporter(metrics: MetricsConfig | None, options: StreamOptions, settings: RunSettings,
              reporter: Reporter, gate: InFlight | None) -> Exporter | None:
    """Serve the job's metrics (`--metrics-port`), or None without it."""
    if metrics is None or options.metrics_port is None:
        return None
    job = job_metrics(metrics)
    job.set_model(*model_identity(settings.model_dir, NOOP_MODEL))
    exporter = Exporter(job, options.metrics_addr, options.metrics_port,
                        lag_now=reporter.lag_now, outage=Outage(f"store:{settings.sink}"),
                        gate=gate)
    exporter.start()
    exporter.refresh(force=True)
    return exporter


def _close(exporter: Exporter | None) -> None:
    if exporter is not None:
        exporter.close()
        forget(exporter.metrics.worker)


def _state(result: Any) -> Any:
    """The job's state; None when Prism cannot be asked (it is gone)."""
    try:
        return result.state
    except Exception as e:  # grpc errors: the job service went away
        log.debug("job state unavailable: %s", e)
        return None


def _watch(result: Any, stop: StopSignals, reporter: Reporter, options: StreamOptions,
           t0: float, exporter: Exporter | None = None, clock: WriteClock | None = None) -> str:
    """Wait for a stop signal, the time limit or the job's end; returns the run status."""
    while True:
        state = _state(result)
        if state is None or PipelineState.is_terminal(state):
            # A signal to the whole process group may have ended Prism first: still a stop.
            if stop.event.wait(1.0):
                quiet_shutdown_logs()
                return "stopped"
            log.error("the pipeline ended by itself (state %s)", state or "unknown: Prism gone")
            return "failed" if state != PipelineState.DONE else "done"
        if clock is not None and not reporter.first_result_reported:
            written = clock.state()
            if written is not None:
                load = _model_load(t0)
                reporter.first_result(written.first_at - t0, load[0] if load else None,
                                      load[1] if load else None)
        if stop.event.wait(0.5):
            name = signal.Signals(stop.signal).name if stop.signal else "signal"
            print(f"[docstream] {name}: draining (finishing the batches already read)",
                  file=sys.stderr, flush=True)
            return "stopped"
        if options.max_seconds is not None and time.monotonic() - t0 >= options.max_seconds:
            return "stopped"
        reporter.tick()
        if exporter is not None:
            exporter.refresh()


def _drain(result: Any, gate: InFlight, use_gate: bool, options: StreamOptions) -> None:
    """Stop reading, let what was read be written (bounded wait), then cancel the job."""
    state = _state(result)
    if state is None or PipelineState.is_terminal(state):
        return
    if use_gate:
        gate.stop()
        deadline = time.monotonic() + options.drain_timeout_s
        while gate.state().batches > 0 and time.monotonic() < deadline:
            state = _state(result)
            if state is None or PipelineState.is_terminal(state):
                break
            time.sleep(0.1)
        left = gate.state().batches
        if left:
            log.warning("drain timed out with %d batch(es) unwritten; a restart replays them",
                        left)
    quiet_shutdown_logs()
    try:
        result.cancel()
        result.wait_until_finish(duration=30_000)
    except Exception as e:  # the job is going away anyway
        log.debug("while cancelling: %s", e)

