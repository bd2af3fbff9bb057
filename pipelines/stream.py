"""The streaming job: Kafka → parse → spaCy → RunInference → SQL store, until stopped.

Shape: streaming.source reads each partition with its own unbounded restriction and emits
one element per poll; Beam fuses everything after it into the same stage, so a poll's
posts are parsed, preprocessed, classified (RunInference batches them within the bundle),
copied to the dead-letter topic and written before that partition is polled again. That is
also the flow control: at most one poll (`max_records`) per partition is in flight, and a
backlog only makes the polls fuller (and the model's batches bigger).

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
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apache_beam as beam
import psutil
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PortableOptions
from apache_beam.runners.runner import PipelineState
from sqlalchemy import Engine, func, select, update

from docstream.errors import ConfigError
from docstream.privacy.redact import default_redactor
from docstream.schemas.envelope import WriteBatch
from docstream.schemas.position import InputPosition
from docstream.store.engine import make_engine
from docstream.store.errors import StoreWriteError
from docstream.store.migrate import upgrade
from docstream.store.offsets import load_positions
from docstream.store.tables import AuditRow, ClassificationRow, DeadLetterRow, RunRow
from docstream.streaming.admin import (
    GroupCommitter,
    end_offsets,
    ensure_topic,
    offsets_consumer,
    resolve_start_offsets,
)
from docstream.streaming.dlq import DeadLetterMessage, DeadLetterPublisher, dlq_topic
from docstream.streaming.errors import StreamingError
from docstream.streaming.flow import InFlight
from docstream.streaming.records import KafkaBatch
from docstream.streaming.source import ReadFromKafkaPartitions
from docstream.streaming.url import KafkaUrl, parse_kafka_url

from .batch import (
    RunSummary,
    beam_options,
    build_model_stages,
    for_each_branch,
    preprocess_config_for,
)
from .model_watch import ModelWatch, RegistryLocator
from .options import RunSettings
from .records import Outcome, RawBatch, RawInput, Span
from .sink import WriteOutcomes

log = logging.getLogger(__name__)

NAMESPACE = "docstream"
PRISM_ENV = "DOCSTREAM_PRISM"
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class StreamOptions:
    """Knobs of the streaming job (the CLI's --flush-secs and friends).

    flush_secs bounds how long a result waits at low traffic. A quiet partition is polled
    again every flush_secs / 4, and RunInference's batches are cut at the end of each source
    bundle (one poll round), so no result waits for a timer. `inference_timer` instead gives
    flush_secs to RunInference as max_batch_duration_secs (Beam's stateful BatchElements
    with a processing-time timer): on Prism 2.77 that timer sometimes never fires, and the
    last partial batch then waits for the next post (seen here: 3 posts held for minutes),
    so it is off by default.
    """

    flush_secs: float = 1.0
    max_records: int = 500
    max_in_flight: int = 5000
    report_every_s: float = 10.0
    drain_timeout_s: float = 60.0
    store_retry_s: float = 60.0
    prism_location: str | None = None
    dead_letter_topic: bool = True
    max_seconds: float | None = None
    inference_timer: bool = False
    #: NAME to follow in the registry (the job was started with NAME@production): a newly
    #: promoted version replaces the model without a restart. None: the model is fixed.
    watch_model: str | None = None
    watch_interval_s: float = 10.0

    def __post_init__(self) -> None:
        if not 0.05 <= self.flush_secs <= 60:
            raise ConfigError(f"--flush-secs must be within 0.05..60, got {self.flush_secs}")
        if not 1 <= self.max_records <= 100_000:
            raise ConfigError(f"--max-records must be within 1..100000, got {self.max_records}")
        if self.max_in_flight < self.max_records:
            raise ConfigError(f"--max-in-flight ({self.max_in_flight}) must be at least "
                              f"--max-records ({self.max_records})")
        if self.report_every_s <= 0 or self.drain_timeout_s < 0 or self.store_retry_s < 0:
            raise ConfigError("report, drain and retry times must be positive")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ConfigError(f"--max-seconds must be > 0, got {self.max_seconds}")
        if not 0.5 <= self.watch_interval_s <= 3600:
            raise ConfigError(f"--watch-model-secs must be within 0.5..3600, got "
                              f"{self.watch_interval_s}")

    @property
    def poll_timeout_ms(self) -> int:
        # Short on purpose: while a bundle of a stage without data outputs runs (this whole
        # fused pipeline), stock Prism 2.77 busy-waits on a closed channel in its progress loop
        # (scripts/build-prism patches that out), so a long blocking poll would cost a core
        # there; the resume delay paces the polls instead.
        return max(1, min(50, int(self.flush_secs * 1000 / 4)))

    @property
    def idle_delay_s(self) -> float:
        return self.flush_secs / 4


@dataclass(frozen=True)
class StreamSummary(RunSummary):
    """What one session of a stream did (counts since it started): a RunSummary plus the
    stream's group, topics, final status, partition positions and lag."""

    group: str = ""
    topics: list[str] = field(default_factory=list)
    status: str = "running"
    positions: dict[str, int] = field(default_factory=dict)
    lag: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "group": self.group, "topics": self.topics,
                "status": self.status, "positions": self.positions, "lag": self.lag}


# ---------------------------------------------------------------------------------- DoFns


class KafkaBatchToRaw(beam.DoFn):
    """KafkaBatch → RawBatch: each record becomes a RawInput at its Kafka position."""

    def process(self, batch: KafkaBatch) -> Iterator[RawBatch]:
        inputs = [
            RawInput(InputPosition(kind="kafka", topic=r.topic, partition=r.partition,
                                   offset=r.offset),
                     r.value, key=r.key, timestamp_ms=r.timestamp_ms)
            for r in batch.records
        ]
        yield RawBatch(inputs, Span(batch.topic, batch.partition, batch.start, batch.end))


class PublishDeadLetters(beam.DoFn):
    """Copies an outcome's dead letters to `<topic>.dlq` (acknowledged) before it is written."""

    def __init__(self, bootstrap: str, run_id: str) -> None:
        self.bootstrap = bootstrap
        self.run_id = run_id
        self.published = Metrics.counter(NAMESPACE, "dead_letters_published")
        self._publisher: DeadLetterPublisher | None = None

    def setup(self) -> None:
        self._publisher = DeadLetterPublisher(self.bootstrap)
        self._redactor = default_redactor()

    def teardown(self) -> None:
        if self._publisher is not None:
            self._publisher.close()

    def process(self, outcome: Outcome) -> Iterator[Outcome]:
        if outcome.failures and self._publisher is not None:
            failures = self._redactor.redact(
                WriteBatch(run_id=self.run_id, failures=outcome.failures)).failures
            messages = []
            for f in failures:
                d, p = f.dead_letter, f.dead_letter.position
                if p.kind != "kafka" or p.topic is None:
                    continue
                messages.append(DeadLetterMessage(
                    topic=p.topic, partition=p.partition or 0, offset=p.offset or 0, key=d.key,
                    value=d.payload, reason=d.reason, stage=d.stage, error=d.error,
                    extra=(("dlq.sha256", f.input_sha256), ("dlq.run_id", self.run_id),
                           ("dlq.doc_id", d.doc_id or ""))))
            self.published.inc(self._publisher.publish(messages))
        yield outcome


class StreamWriteOutcomes(WriteOutcomes):
    """WriteOutcomes that rides out a store outage: a failed (rolled back) batch is retried
    for up to `retry_s` seconds before the job fails (and a restart resumes exactly)."""

    def __init__(self, *args: Any, retry_s: float = 60.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_s = retry_s

    def process(self, outcome: Outcome) -> Iterator[tuple[Any, int]]:
        span = outcome.span
        key = (span.topic, span.partition, span.start, span.end) if span else None
        deadline = time.monotonic() + self.retry_s
        delay = 0.5
        while True:
            try:
                # the write happens before the only yield: a retry never yields twice
                for n in super().process(outcome):
                    yield key, n
                return
            except StoreWriteError as e:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("%s; retrying in %.1f s", e, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)


class MarkDone(beam.DoFn):
    """The end of the line: a written batch is no longer in flight."""

    def __init__(self, gate: InFlight) -> None:
        self.gate = gate
        self.done = Metrics.counter(NAMESPACE, "stream_records_done")
        self.repeats = Metrics.counter(NAMESPACE, "stream_batches_repeated")

    def process(self, written: tuple[Any, int]) -> Iterator[None]:
        key, n = written
        if self.gate.done(key):
            self.done.inc(n)
        else:
            self.repeats.inc()  # delivered twice by the runner; the store absorbed it
        return iter(())


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


def find_prism(explicit: str | None = None) -> str:
    """The Prism binary: explicit, else $DOCSTREAM_PRISM, else scripts/build-prism's output."""
    for candidate, origin in ((explicit, "--prism"), (os.environ.get(PRISM_ENV), PRISM_ENV)):
        if candidate:
            if not os.access(candidate, os.X_OK):
                raise ConfigError(f"{origin}={candidate!r} is not an executable Prism binary")
            return candidate
    script = REPO / "scripts" / "build-prism"
    if script.is_file():
        proc = subprocess.run([str(script)], capture_output=True, text=True, timeout=900)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode == 0 and lines and os.access(lines[-1], os.X_OK):
            return lines[-1]
        raise ConfigError(f"scripts/build-prism failed ({proc.returncode}): "
                          f"{(proc.stderr or proc.stdout).strip()[-500:]}")
    raise ConfigError(f"no Prism runner binary: set {PRISM_ENV} to one, or pass "
                      "-- --prism_location=PATH (build it with scripts/build-prism)")


def _has_arg(args: Sequence[str], name: str) -> bool:
    return any(a == name or a.startswith(name + "=") for a in args)


def stream_pipeline_options(settings: RunSettings, options: StreamOptions) -> Any:
    extra: list[str] = []
    if settings.runner == "PrismRunner":
        if not _has_arg(settings.beam_args, "--prism_location"):
            extra.append(f"--prism_location={find_prism(options.prism_location)}")
        if not _has_arg(settings.beam_args, "--prism_log_level"):
            extra.append("--prism_log_level=warn")
    settings = settings.model_copy(update={"beam_args": [*settings.beam_args, *extra]})
    return beam_options(settings, streaming=True)


def start_stream_run(engine: Engine, run_id: str, source: str, model: str) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        seen = conn.execute(select(RunRow.run_id).where(RunRow.run_id == run_id)).first()
        if seen:
            conn.execute(update(RunRow).where(RunRow.run_id == run_id).values(
                started_at=now, finished_at=None, source=source, model=model, status="running"))
        else:
            conn.execute(RunRow.__table__.insert().values(
                run_id=run_id, started_at=now, source=source, model=model, status="running"))


def finish_stream_run(engine: Engine, summary: StreamSummary) -> None:
    with engine.begin() as conn:
        conn.execute(update(RunRow).where(RunRow.run_id == summary.run_id).values(
            finished_at=datetime.now(UTC), status=summary.status, summary=summary.as_dict()))


def summarize_session(engine: Engine, run_id: str, since: datetime) -> dict[str, Any]:
    """Counts of what this session wrote (rows stamped at or after `since`)."""
    with engine.connect() as conn:
        inputs = conn.execute(select(func.count()).where(
            AuditRow.run_id == run_id, AuditRow.recorded_at >= since)).scalar_one()
        labels = dict(conn.execute(
            select(ClassificationRow.label, func.count())
            .where(ClassificationRow.run_id == run_id, ClassificationRow.processed_at >= since)
            .group_by(ClassificationRow.label)).all())
        review = conn.execute(select(func.count()).where(
            ClassificationRow.run_id == run_id, ClassificationRow.processed_at >= since,
            ClassificationRow.needs_review.is_(True))).scalar_one()
        dead = dict(conn.execute(
            select(DeadLetterRow.reason, func.count())
            .where(DeadLetterRow.run_id == run_id, DeadLetterRow.last_seen >= since)
            .group_by(DeadLetterRow.reason)).all())
    return {
        "inputs": int(inputs), "classified": sum(int(v) for v in labels.values()),
        "labels": {k: int(v) for k, v in sorted(labels.items())},
        "dead_letters": sum(int(v) for v in dead.values()),
        "dead_by_reason": {k: int(v) for k, v in sorted(dead.items())},
        "needs_review": int(review),
    }


class Reporter:
    """Every `every_s`: durable positions (store) vs end offsets (Kafka) = lag, throughput
    from the in-process counters; one log line, and the positions committed to the group."""

    def __init__(self, engine: Engine, url: KafkaUrl, starts: Mapping[tuple[str, int], int],
                 gate: InFlight, every_s: float, enabled: bool) -> None:
        self.engine = engine
        self.url = url
        self.starts = dict(starts)
        self.gate = gate
        self.every_s = every_s
        self.enabled = enabled
        self.committer = GroupCommitter(url.bootstrap, url.group)
        self._consumer: Any = None
        self._last_t = time.monotonic()
        self._last_done = 0
        self.lag: int | None = None
        self.positions: dict[tuple[str, int], int] = {}
        self.first_write_at: float | None = None  # monotonic time of the first written batch

    def lag_now(self) -> tuple[int | None, dict[tuple[str, int], int]]:
        self.positions = {**self.starts, **load_positions(self.engine, self.url.group)}
        try:
            if self._consumer is None:
                self._consumer = offsets_consumer(self.url.bootstrap, timeout_s=5)
            ends = end_offsets(self._consumer, self.positions, timeout_s=5)
        except Exception as e:  # broker away: report what we know
            log.debug("end offsets unavailable: %s", e)
            self.close_consumer()
            return None, {}
        lags = {k: max(ends[k] - self.positions.get(k, 0), 0) for k in ends}
        return sum(lags.values()), lags

    def close_consumer(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):  # closing a broken client
                self._consumer.close()
            self._consumer = None

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_t < self.every_s:
            return
        st = self.gate.state()
        rate = (st.done_records - self._last_done) / max(now - self._last_t, 1e-9)
        self._last_t, self._last_done = now, st.done_records
        try:
            self.lag, lags = self.lag_now()
            self.committer.commit(self.positions)
        except Exception as e:  # a report must never stop the job
            log.warning("stream report failed: %s", e)
            return
        if self.enabled:
            parts = ", ".join(f"{t}/{p} {n:,}" for (t, p), n in sorted(lags.items()))
            lag = f"lag {self.lag:,} ({parts})" if self.lag is not None else "lag unknown"
            repeats = f", {st.duplicates:,} repeated" if st.duplicates else ""
            print(f"[docstream] stream {self.url.group}: {st.done_records:,} done, "
                  f"{rate:,.0f} docs/s, {lag}, in flight {st.records:,}{repeats}",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        self.close_consumer()
        self.committer.close()


class _Stop:
    """SIGINT/SIGTERM → a flag the main loop sees; the previous handlers come back after."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop draining
        self.signal = signum
        self.event.set()
        # A signal to the whole process group ends Prism too; the SDK worker threads then
        # report lost connections, which are expected now.
        threading.excepthook = _quiet_thread_error
        _quiet_shutdown_logs()

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def run(self, p: beam.Pipeline) -> Any:
        """p.run() with SIGINT ignored meanwhile: Prism, started now, inherits that (a Go
        program started with SIGINT ignored keeps ignoring it), so a terminal's Ctrl-C, which
        reaches the whole process group, cannot kill it under a draining job. Beam's
        job-server SIGINT handler (which stops Prism) is replaced by ours again after."""
        if not self._old:
            return p.run()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return p.run()
        finally:
            signal.signal(signal.SIGINT, self._handle)
            signal.signal(signal.SIGTERM, self._handle)


def _stop_prism() -> None:
    """End the Prism process this job started (our child), now rather than at exit: it
    ignores SIGINT (see _Stop.run), which Beam's exit hook would send five times, 1 s apart."""
    try:
        children = psutil.Process().children()
    except psutil.Error:
        return
    mine = [c for c in children if _is_prism(c)]
    for c in mine:
        with contextlib.suppress(psutil.Error):
            c.terminate()
    _, alive = psutil.wait_procs(mine, timeout=5)
    for c in alive:
        with contextlib.suppress(psutil.Error):
            c.kill()


def _is_prism(proc: psutil.Process) -> bool:
    try:
        cmd = proc.cmdline()
    except psutil.Error:
        return False
    return bool(cmd) and os.path.basename(cmd[0]).startswith("prism") and "--job_port" in cmd


def _quiet_thread_error(args: Any) -> None:
    log.debug("after the stop signal, thread %s: %s", getattr(args.thread, "name", "?"),
              args.exc_value)


def _quiet_shutdown_logs() -> None:
    # Cancelling a portable job makes the in-process SDK worker log tracebacks for the
    # bundles it was running; they are expected.
    for name in ("apache_beam.runners.worker.sdk_worker", "apache_beam.utils.subprocess_server",
                 "apache_beam.runners.worker.data_plane", "apache_beam.runners.portability",
                 "PrismJobServer"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


# ----------------------------------------------------------------------------------- run


def build_stream(p: beam.Pipeline, settings: RunSettings, options: StreamOptions, url: KafkaUrl,
                 starts: Mapping[tuple[str, int], int], run_id: str, gate: InFlight,
                 use_gate: bool) -> None:
    pre_config = preprocess_config_for(settings.model_dir)
    batches = p | "Read" >> ReadFromKafkaPartitions(
        url.bootstrap, list(url.topics), starts, poll_timeout_ms=options.poll_timeout_ms,
        max_records=options.max_records, idle_delay_s=options.idle_delay_s,
        gate=gate if use_gate else None)
    raw = batches | "ToRaw" >> beam.ParDo(KafkaBatchToRaw()).with_output_types(RawBatch)
    watch = None
    if options.watch_model:
        watch = ModelWatch(RegistryLocator(settings.sink, options.watch_model),
                           interval_s=options.watch_interval_s)
    outcomes = build_model_stages(
        raw, settings, pre_config,
        max_batch_duration_secs=options.flush_secs if options.inference_timer else None,
        watch=watch)
    if options.dead_letter_topic:
        outcomes = for_each_branch(outcomes, "DeadLetterTopic", beam.ParDo(
            PublishDeadLetters(url.bootstrap, run_id)))
    written = for_each_branch(outcomes, "Write", beam.ParDo(StreamWriteOutcomes(
        settings.sink, run_id, consumer_group=url.group, start_positions=starts,
        progress=False, retry_s=options.store_retry_s)))
    for_each_branch(written, "Done", beam.ParDo(MarkDone(gate)))


def run_stream(settings: RunSettings, options: StreamOptions | None = None) -> StreamSummary:
    """Run the streaming job until SIGINT/SIGTERM (or options.max_seconds); return a summary."""
    options = options or StreamOptions()
    url = kafka_url_of(settings.sources)
    run_id = stream_run_id(url.group)
    with _Stop() as stop:
        engine = make_engine(settings.sink)
        try:
            return _run(settings, options, url, run_id, engine, stop)
        finally:
            engine.dispose()


def _run(settings: RunSettings, options: StreamOptions, url: KafkaUrl, run_id: str,
         engine: Engine, stop: _Stop) -> StreamSummary:
    upgrade(engine)
    starts = resolve_start_offsets(url.bootstrap, url.topics,
                                   load_positions(engine, url.group))
    if options.dead_letter_topic:
        for topic in url.topics:
            ensure_topic(url.bootstrap, dlq_topic(topic), partitions=1)
    pipeline_options = stream_pipeline_options(settings, options)
    env = pipeline_options.view_as(PortableOptions).environment_type
    use_gate = settings.runner == "PrismRunner" and env in (None, "LOOPBACK")
    if not use_gate:
        log.warning("the in-flight limit needs the in-process (LOOPBACK) SDK worker; with "
                    "runner %s and environment %s, memory is bounded only by the runner",
                    settings.runner, env)
    gate = InFlight(f"{run_id}-{uuid.uuid4().hex[:8]}", options.max_in_flight)
    p = beam.Pipeline(options=pipeline_options)
    build_stream(p, settings, options, url, starts, run_id, gate, use_gate)

    since = datetime.now(UTC)
    start_stream_run(engine, run_id, str(url), settings.model_dir)
    reporter = Reporter(engine, url, starts, gate, options.report_every_s, settings.progress)
    log.info("stream %s from %s", run_id, {f"{t}/{p}": o for (t, p), o in starts.items()})
    t0 = time.monotonic()
    status = "failed"
    result = None
    try:
        if stop.event.is_set():
            status = "stopped"
        else:
            result = stop.run(p)
            status = _watch(result, stop, reporter, options, t0)
            _drain(result, gate, use_gate, options)
            _stop_prism()
    finally:
        seconds = time.monotonic() - t0
        reporter.tick(force=True)
        reporter.close()
        counts = summarize_session(engine, run_id, since)
        summary = StreamSummary(
            run_id=run_id, group=url.group, topics=list(url.topics), seconds=seconds,
            status=status, lag=reporter.lag,
            startup_seconds=(reporter.first_write_at - t0) if reporter.first_write_at else 0.0,
            positions={f"{t}/{p}": o for (t, p), o in sorted(reporter.positions.items())},
            **counts)
        finish_stream_run(engine, summary)
        gate.reset()
    if status == "failed":
        raise StreamingError(f"the streaming job {run_id} failed (see the log above); run it "
                             "again: it resumes from the positions stored with the results")
    return summary


def _state(result: Any) -> Any:
    """The job's state; None when Prism cannot be asked (it is gone)."""
    try:
        return result.state
    except Exception as e:  # grpc errors: the job service went away
        log.debug("job state unavailable: %s", e)
        return None


def _watch(result: Any, stop: _Stop, reporter: Reporter, options: StreamOptions,
           t0: float) -> str:
    """Wait for a stop signal, the time limit or the job's end; returns the run status."""
    while True:
        state = _state(result)
        if state is None or PipelineState.is_terminal(state):
            # A signal to the whole process group may have ended Prism first: still a stop.
            if stop.event.wait(1.0):
                _quiet_shutdown_logs()
                return "stopped"
            log.error("the pipeline ended by itself (state %s)", state or "unknown: Prism gone")
            return "failed" if state != PipelineState.DONE else "done"
        if reporter.first_write_at is None and reporter.gate.state().done_batches:
            reporter.first_write_at = time.monotonic()
        if stop.event.wait(0.5):
            name = signal.Signals(stop.signal).name if stop.signal else "signal"
            print(f"[docstream] {name}: draining (finishing the batches already read)",
                  file=sys.stderr, flush=True)
            return "stopped"
        if options.max_seconds is not None and time.monotonic() - t0 >= options.max_seconds:
            return "stopped"
        reporter.tick()


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
    _quiet_shutdown_logs()
    try:
        result.cancel()
        result.wait_until_finish(duration=30_000)
    except Exception as e:  # the job is going away anyway
        log.debug("while cancelling: %s", e)

