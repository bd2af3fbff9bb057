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
— rows being keyed by post, audit records by (run id, position), and a partition written
by one owner epoch at a time — doubles nothing. Dead
letters are copied to `<topic>.dlq` BEFORE that transaction (at-least-once: a crash in
between republishes them). Positions are also committed to the Kafka consumer group,
for lag tools only.

Workers: several `docstream run` processes of one group share the topics' partitions. Each is a
member of the Kafka consumer group (streaming.membership, cooperative-sticky) and reads only
the partitions assigned to it: it claims them in the store (store.offsets: the owner epoch
rises, the stored position is where it starts), builds the pipeline over them, and runs it
until its assignment changes. Then it drains (stops polling, writes what it read), cancels the
job, releases the revoked partitions to the group, and plans again: a "plan" per assignment.
Every write carries the claimed epoch, so a worker that lost a partition while stalled writes
nothing more of it (store.writer). Each worker has its own run id `stream-<group>-<worker>`.

Stopping (SIGINT/SIGTERM): the sources stop polling, the batches already read are written,
then the job is cancelled and a summary returned. Without a drain (kill -9) the same
transactions make the restart exact.

Metrics (`--metrics-port`): pipelines.metrics; the exporter runs in this process, and the
DoFns count into the same objects because Prism's LOOPBACK SDK worker runs them in threads
of this process.

Beside this module: stream_options (knobs, Beam options), stream_fns (the DoFns), stream_watch
(watching, draining, timings), prism
(finding and stopping Prism), reporter (lag lines), shutdown (signals), metrics
(Prometheus); the `runs` rows are kept by docstream.store.runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PortableOptions
from sqlalchemy import Engine

from docstream.errors import ConfigError
from docstream.store.audit_chain import run_heads
from docstream.store.engine import check_reachable, make_engine
from docstream.store.migrate import upgrade
from docstream.store.offsets import Claim, claim_partitions
from docstream.store.runs import count_run, finish_run, start_run
from docstream.streaming.admin import ensure_topic, topic_partitions
from docstream.streaming.dlq import dlq_topic
from docstream.streaming.errors import StreamingError
from docstream.streaming.flow import InFlight
from docstream.streaming.membership import Assignment, GroupMembership
from docstream.streaming.source import ReadFromKafkaPartitions
from docstream.streaming.url import KafkaUrl, parse_kafka_url

from .batch import build_model_stages, for_each_branch, preprocess_config_for
from .explain_branch import EXPLAIN_STOP_WAIT_S, add_explain_branch, drain_services
from .handler import NOOP_MODEL
from .metrics import Exporter, MetricsConfig, default_worker, forget, job_metrics, model_identity
from .model_watch import ModelWatch, RegistryLocator
from .options import RunSettings
from .outage import Outage
from .prism import stop_prism
from .records import RawBatch
from .reporter import Reporter
from .shutdown import StopSignals
from .stream_fns import (
    KafkaBatchToRaw,
    MarkDone,
    PublishDeadLetters,
    StreamWriteOutcomes,
    WriteClock,
)
from .stream_options import StreamOptions, poll_tokens_for, stream_pipeline_options
from .stream_watch import drain, timings, watch
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


def stream_run_id(group: str, worker: str) -> str:
    """One run id per worker of a consumer group: its `runs` row, audit chain and counts are
    its own (a restart with the same `--worker` continues them)."""
    run_id = f"stream-{group}-{worker}"
    if len(run_id) <= 64:
        return run_id
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:12]
    return f"{run_id[:51]}-{digest}"


# ----------------------------------------------------------------------------------- run


def build_stream(p: beam.Pipeline, read: ReadFromKafkaPartitions, settings: RunSettings,
                 options: StreamOptions, url: KafkaUrl, run_id: str, gate: InFlight,
                 metrics: MetricsConfig | None = None, clock: WriteClock | None = None,
                 claims: Mapping[tuple[str, int], Claim] | None = None,
                 plan: str | None = None) -> None:
    """Kafka (`read`, which holds the resolved start offsets) → model → DLQ topic → store;
    with `metrics`, the DoFns feed the job's Prometheus metrics (pipelines.metrics); with
    `clock`, the writer notes when inputs were committed (the summary's timings); with
    `claims`, every write carries the partition's owner epoch (fenced once it moves on)."""
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
    epochs = {k: c.epoch for k, c in claims.items()} if claims is not None else None
    written = for_each_branch(outcomes, "Write", beam.ParDo(StreamWriteOutcomes(
        settings.sink, run_id, consumer_group=url.group, start_positions=read.start_offsets,
        progress=False, store_wait_s=options.store_wait_s, gate=gate, metrics=metrics,
        clock=clock, epochs=epochs, plan=plan)))
    for_each_branch(written, "Done", beam.ParDo(MarkDone(gate, metrics)))


def run_stream(settings: RunSettings, options: StreamOptions | None = None) -> StreamSummary:
    """Run this worker of the streaming job until SIGINT/SIGTERM (or options.max_seconds);
    return a summary."""
    options = options or StreamOptions()
    url = kafka_url_of(settings.sources)
    worker = options.worker or default_worker()
    run_id = stream_run_id(url.group, worker)
    with StopSignals() as stop:
        engine = make_engine(settings.sink)
        try:
            return _run(settings, options, url, _Worker(worker, run_id), engine, stop)
        finally:
            engine.dispose()


@dataclass(frozen=True)
class _Worker:
    name: str
    run_id: str


@dataclass
class _Job:
    """What stays from one plan to the next."""

    settings: RunSettings
    options: StreamOptions
    url: KafkaUrl
    worker: _Worker
    engine: Engine
    stop: StopSignals
    gate: InFlight
    use_gate: bool
    clock: WriteClock
    reporter: Reporter
    metrics: MetricsConfig | None
    exporter: Exporter | None
    t0: float
    #: when the worker noticed its partitions change (the pause until the next plan reads)
    changed_at: float | None = None


def _run(settings: RunSettings, options: StreamOptions, url: KafkaUrl, worker: _Worker,
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
    run_id = worker.run_id
    gate = InFlight(f"{run_id}-{uuid.uuid4().hex[:8]}", options.max_in_flight)
    topic_partitions(url.bootstrap, url.topics)  # every topic exists, or one line now
    if options.dead_letter_topic:
        for topic in url.topics:
            ensure_topic(url.bootstrap, dlq_topic(topic), partitions=1)
    metrics = None
    if options.metrics_port is not None:
        metrics = MetricsConfig(options.metrics_worker or worker.name, os.getpid())
        if not use_gate:
            log.warning("--metrics-port: the DoFns count in the SDK worker processes of "
                        "environment %s, which this exporter does not see; only the lag and "
                        "the store outage are exported", env)
    clock = WriteClock(gate.name)
    membership = GroupMembership(url.bootstrap, url.topics, url.group, worker.name)
    reporter = Reporter(engine, url, {}, gate, options.report_every_s, settings.progress,
                        committer=membership)
    # binds the port: one already taken fails here, before the run is recorded
    exporter = _exporter(metrics, options, settings, reporter, gate if use_gate else None)
    since = datetime.now(UTC)
    try:
        start_run(engine, run_id, str(url), settings.model_dir)
    except BaseException:
        _close(exporter)
        raise
    job = _Job(settings, options, url, worker, engine, stop, gate, use_gate, clock, reporter,
               metrics, exporter, time.monotonic())
    status = "failed"
    plans = 0
    owned: frozenset[tuple[str, int]] = frozenset()
    try:
        membership.start()
        while True:
            assignment = _next_assignment(job, membership)
            if assignment is None:
                status = "stopped"
                break
            owned = assignment.partitions
            if not owned:  # nothing to read: wait for the group to change
                status = _idle(job, membership, assignment)
            else:
                plans += 1
                status = _plan(job, pipeline_options, membership, assignment, plans)
            membership.released()
            if status != "replan":
                break
    finally:
        membership.close()
        stop_prism()
        seconds = time.monotonic() - job.t0
        # a stopping stream does not wait long for explanations (they are best effort)
        explained = drain_services(min(options.drain_timeout_s, EXPLAIN_STOP_WAIT_S))
        reporter.tick(force=True)
        _close(exporter)
        reporter.close()
        counts = count_run(engine, run_id, since)
        spent = timings(clock, job.t0)
        summary = StreamSummary(
            run_id=run_id, group=url.group, topics=list(url.topics), seconds=seconds,
            status=status, lag=reporter.lag, startup_seconds=spent["first_result_s"] or 0.0,
            worker=worker.name, owned=[f"{t}/{p}" for t, p in sorted(owned)], plans=plans,
            positions={f"{t}/{p}": o for (t, p), o in sorted(reporter.positions.items())},
            audit_heads=[h.model_dump() for h in run_heads(engine, run_id, since)],
            explanations=explained, **spent, **asdict(counts))
        finish_run(engine, run_id, summary.status, summary.as_dict())
        gate.reset()
        clock.reset()
    if status == "failed":
        raise StreamingError(f"the streaming job {run_id} failed (see the log above); run it "
                             "again: it resumes from the positions stored with the results")
    return summary


def _next_assignment(job: _Job, membership: GroupMembership) -> Assignment | None:
    """The group's assignment for this worker once it settled; None once stopping."""
    while not job.stop.event.is_set():
        assignment = membership.stable(job.stop.event, timeout_s=job.options.report_every_s)
        if assignment is not None:
            return assignment
        if _time_up(job):
            return None
        job.reporter.tick()
    return None


def _say(job: _Job, line: str) -> None:
    """A change of the worker's partitions: on stderr with progress lines, else logged."""
    if job.settings.progress:
        print(f"[docstream] {line}", file=sys.stderr, flush=True)
    else:
        log.info("%s", line)


def _time_up(job: _Job) -> bool:
    limit = job.options.max_seconds
    return limit is not None and time.monotonic() - job.t0 >= limit


def _idle(job: _Job, membership: GroupMembership, assignment: Assignment) -> str:
    """Own nothing (more workers than partitions): wait for a change, a stop or the limit."""
    _say(job, f"worker {job.worker.name} of group {job.url.group} owns no partition; waiting "
              "for the group to change")
    while not membership.changed(assignment):
        if job.stop.event.wait(0.5):
            return "stopped"
        if _time_up(job):
            return "stopped"
        job.reporter.tick()
    job.changed_at = time.monotonic()
    return "replan"


def _plan(job: _Job, pipeline_options: Any, membership: GroupMembership,
          assignment: Assignment, n: int) -> str:
    """Claim the assignment's partitions, run the pipeline over them until the group changes
    (→ "replan"), a stop, the time limit, or a failure; drain it and return the status."""
    settings, options, url = job.settings, job.options, job.url
    claims = claim_partitions(job.engine, url.group, job.worker.name, assignment.partitions)
    # The source resolves where each claimed partition starts: its stored position, else its
    # first retained offset.
    read = ReadFromKafkaPartitions(
        url.bootstrap, list(url.topics), {k: c.next_offset for k, c in claims.items()},
        poll_timeout_ms=options.poll_timeout_ms, max_records=options.max_records,
        idle_delay_s=options.idle_delay_s, gate=job.gate if job.use_gate else None,
        poll_tokens=poll_tokens_for(options, settings.device),
        partitions=assignment.partitions)
    starts = read.start_offsets
    job.gate.restart()
    p = beam.Pipeline(options=pipeline_options)
    build_stream(p, read, settings, options, url, job.worker.run_id, job.gate, job.metrics,
                 job.clock, claims=claims, plan=f"{job.gate.name}-{n}")
    job.reporter.starts = dict(starts)
    if job.stop.event.is_set():
        return "stopped"
    result = job.stop.run(p)
    pause = (f", {time.monotonic() - job.changed_at:.1f} s after the group changed"
             if job.changed_at is not None else "")
    _say(job, f"worker {job.worker.name} of group {url.group} (plan {n}{pause}) reads "
         + ", ".join(f"{t}/{p} from {o:,} (epoch {claims[(t, p)].epoch})"
                     for (t, p), o in sorted(starts.items())))
    status = watch(result, job.stop, job.reporter, options, job.t0, job.exporter, job.clock,
                    lambda: membership.changed(assignment))
    if status == "replan":
        job.changed_at = time.monotonic()
    drain(result, job.gate, job.use_gate, options)
    return status


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
