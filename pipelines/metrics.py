"""Prometheus metrics of the streaming job (`docstream run --metrics-port`).

Where they live: one `JobMetrics` per worker label per process (`job_metrics`), in its own
CollectorRegistry (never prometheus_client's global one, so that two jobs, or two tests, in
one process do not collide). The launcher (pipelines.stream) creates it, serves it over HTTP
(`Exporter`) and keeps the gauges it alone knows up to date: consumer lag (the stored
positions against the log-end offsets, at most every LAG_REFRESH_S), records in flight, the
store outage state (pipelines.outage) and the model at start. The DoFns
(pipelines.stream_fns) record what passes through them: a batch's start and its records'
Kafka timestamps when it enters the pipeline (KafkaBatchToRaw), and once its transaction is
committed (StreamWriteOutcomes) the docs, dead letters by reason, flagged results, the two
latencies and the model that classified it (so a hot swap shows).

How the exporter sees the DoFns' counts: the DoFns hold only a picklable `MetricsConfig` and
look the JobMetrics up by worker label in `setup()`. On Prism the SDK worker is LOOPBACK, i.e.
threads of the launching process (Beam's worker pool with use_process=False), so they find
the very object the exporter serves, as the in-flight gate (streaming.flow) relies on too.
With any other SDK environment the DoFns would count in a process nobody scrapes: the job
warns at its start, and each such process once (`job_metrics`).

Every metric has the constant label `worker` (default HOST-PID, `--metrics-worker NAME`), so
several workers on one machine can be told apart whether each has its own port (the usual
way: one `--metrics-port` per worker) or their series are merged downstream.

Example:
    >>> from prometheus_client import generate_latest
    >>> m = JobMetrics("w1")
    >>> m.set_model("noop", "0")
    >>> m.set_lag({("posts", 0): 3})
    >>> text = generate_latest(m.registry).decode()
    >>> 'docstream_consumer_lag{partition="0",topic="posts",worker="w1"} 3.0' in text
    True
    >>> 'docstream_model_info{name="noop",version="0",worker="w1"} 1.0' in text
    True
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from docstream.errors import ConfigError
from docstream.streaming.flow import InFlight

from .outage import Outage
from .records import Outcome

log = logging.getLogger(__name__)

#: the consumer lag is recomputed at most this often (a store query and a broker request)
LAG_REFRESH_S = 2.0
#: batches whose start is remembered at most (entries of batches that never end are dropped)
MAX_TRACKED_BATCHES = 10_000
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                 120.0)
PRODUCE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                   1800.0, 3600.0)


def default_worker() -> str:
    """HOST-PID of this process: unique among the workers of one machine."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class MetricsConfig:
    """What the DoFns carry (pickled): the worker label, and the launcher's pid to notice
    being run in another process."""

    worker: str
    launcher_pid: int


@dataclass
class _Started:
    at: float  # time.monotonic() when the batch entered the pipeline
    timestamps_ms: list[int]  # its records' Kafka timestamps


class JobMetrics:
    """The streaming job's metrics in their own registry, all labelled `worker`."""

    def __init__(self, worker: str, registry: CollectorRegistry | None = None) -> None:
        self.worker = worker
        self.registry = registry or CollectorRegistry()
        r, w = self.registry, ["worker"]
        self.docs = Counter("docstream_docs_processed", "Inputs written to the store, by "
                            "outcome (classified, dead_letter)", [*w, "outcome"], registry=r)
        self.dead = Counter("docstream_dead_letters", "Dead letters written, by reason",
                            [*w, "reason"], registry=r)
        self.flagged = Counter("docstream_needs_review", "Results written with needs_review",
                               w, registry=r)
        self.share = Gauge("docstream_needs_review_share", "needs_review results / classified "
                           "results since the job started", w, registry=r)
        self.lag = Gauge("docstream_consumer_lag", "Records not yet durably processed: log-end "
                         "offset minus the position stored with the results",
                         [*w, "topic", "partition"], registry=r)
        self.batch_seconds = Histogram(
            "docstream_write_batch_seconds", "From a Kafka poll batch entering the pipeline to "
            "its store transaction committed (parse, classify, DLQ copy, write)", w,
            buckets=BATCH_BUCKETS, registry=r)
        self.produce_seconds = Histogram(
            "docstream_produce_to_row_seconds", "From a record's Kafka timestamp to the commit "
            "of its row (result or dead letter)", w, buckets=PRODUCE_BUCKETS, registry=r)
        self.repeats = Counter("docstream_batches_repeated", "Batches the runner delivered "
                               "twice (the store absorbed the repeat)", w, registry=r)
        self.model = Info("docstream_model", "The model classifying now (follows hot swaps)",
                          w, registry=r)
        self._docs = {o: self.docs.labels(worker, o) for o in ("classified", "dead_letter")}
        self._flagged = self.flagged.labels(worker)
        self._share = self.share.labels(worker)
        self._batch = self.batch_seconds.labels(worker)
        self._produce = self.produce_seconds.labels(worker)
        self._repeats = self.repeats.labels(worker)
        self._lock = threading.Lock()
        self._classified = 0
        self._flagged_n = 0
        self._model: tuple[str, str] | None = None
        self._started: dict[Hashable, _Started] = {}
        self._lag_keys: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ from the DoFns

    def batch_started(self, key: Hashable, timestamps_ms: Iterable[int | None]) -> None:
        """A poll batch (key: topic, partition, start, end) enters the pipeline."""
        started = _Started(time.monotonic(),
                           [t for t in timestamps_ms if t is not None and t >= 0])
        with self._lock:
            self._started[key] = started
            while len(self._started) > MAX_TRACKED_BATCHES:
                del self._started[next(iter(self._started))]

    def batch_written(self, key: Hashable | None, outcome: Outcome) -> None:
        """`outcome` (the batch `key`, if any) was committed to the store just now."""
        now_mono, now_ms = time.monotonic(), time.time() * 1000
        results, failures = outcome.results, outcome.failures
        flagged = sum(1 for r in results if r.result.needs_review)
        with self._lock:
            started = self._started.pop(key, None) if key is not None else None
            self._classified += len(results)
            self._flagged_n += flagged
            share = self._flagged_n / self._classified if self._classified else 0.0
        self._docs["classified"].inc(len(results))
        self._docs["dead_letter"].inc(len(failures))
        for f in failures:
            self.dead.labels(self.worker, f.dead_letter.reason).inc()
        if flagged:
            self._flagged.inc(flagged)
        self._share.set(share)
        if started is not None:
            self._batch.observe(now_mono - started.at)
            for ts in started.timestamps_ms:
                self._produce.observe(max(now_ms - ts, 0.0) / 1000)
        if results:
            m = results[-1].result.model
            self.set_model(m.name, m.version)

    def repeated(self) -> None:
        self._repeats.inc()

    # ----------------------------------------------------------------- from the launcher

    def set_model(self, name: str, version: str) -> None:
        if self._model != (name, version):
            self._model = (name, version)
            self.model.labels(self.worker).info({"name": name, "version": version})

    def set_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        keys = {(t, str(p)) for t, p in lags}
        for (t, p), n in lags.items():
            self.lag.labels(self.worker, t, str(p)).set(n)
        for t, p in self._lag_keys - keys:  # a partition no longer read
            self.lag.remove(self.worker, t, p)
        self._lag_keys = keys


class _JobStateCollector(Collector):
    """Read at scrape time: the store outage (pipelines.outage) and the in-flight gate."""

    def __init__(self, worker: str, outage: Outage, gate: InFlight | None) -> None:
        self.worker = worker
        self.outage = outage
        self.gate = gate

    def collect(self) -> Iterator[Any]:
        snap = self.outage.snapshot()
        w = [self.worker]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=["worker"])
            g.add_metric(w, value)
            return g

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            c = CounterMetricFamily(name, doc, labels=["worker"])
            c.add_metric(w, value)
            return c

        yield gauge("docstream_store_outage", "1 while the store is unavailable (writes are "
                    "held and retried), else 0", 1.0 if snap.down else 0.0)
        yield gauge("docstream_store_outage_current_seconds", "How long the current store "
                    "outage has lasted (0 when none)", snap.current_s)
        yield counter("docstream_store_outage_seconds", "Seconds of store outage in all, the "
                      "current one included", snap.total_s)
        yield counter("docstream_store_outages", "Store outages seen (ended or current)",
                      snap.outages)
        if self.gate is not None:
            st = self.gate.state()
            yield gauge("docstream_in_flight_records", "Records read from Kafka and not yet "
                        "written", st.records)
            yield gauge("docstream_polls_paused", "1 while the sources are held back (store "
                        "outage)", 1.0 if st.paused else 0.0)


_LOCK = threading.Lock()
_PROCESS: dict[str, JobMetrics] = {}
_WARNED: set[int] = set()


def job_metrics(config: MetricsConfig) -> JobMetrics:
    """This process's JobMetrics for `config.worker` (made on first use)."""
    with _LOCK:
        metrics = _PROCESS.get(config.worker)
        if metrics is None:
            metrics = _PROCESS[config.worker] = JobMetrics(config.worker)
        pid = os.getpid()
        if pid != config.launcher_pid and pid not in _WARNED:
            _WARNED.add(pid)
            log.warning("metrics: this SDK worker (pid %d) is not the launcher (pid %d), whose "
                        "exporter does not see its counts; run with the LOOPBACK environment",
                        pid, config.launcher_pid)
        return metrics


def forget(worker: str) -> None:
    """Drop this process's JobMetrics for `worker` (the job ended)."""
    with _LOCK:
        _PROCESS.pop(worker, None)


class Exporter:
    """The launcher's side: serves `metrics` on http://ADDR:PORT/metrics (port 0: any free
    one) and refreshes the consumer lag from `lag_now` (at most every LAG_REFRESH_S)."""

    def __init__(self, metrics: JobMetrics, addr: str, port: int, *,
                 lag_now: Callable[[], tuple[int | None, dict[tuple[str, int], int]]],
                 outage: Outage, gate: InFlight | None = None,
                 lag_every_s: float = LAG_REFRESH_S) -> None:
        self.metrics = metrics
        self.addr = addr
        self.port = port
        self.lag_now = lag_now
        self.lag_every_s = lag_every_s
        self._collector = _JobStateCollector(metrics.worker, outage, gate)
        metrics.registry.register(self._collector)
        self._server: Any = None
        self._next_lag = 0.0

    def start(self) -> int:
        """Start serving; returns the port (the one picked, for port 0) and says so on
        stderr (the job's log is WARNING and above by default)."""
        try:
            self._server, _ = start_http_server(self.port, addr=self.addr,
                                                registry=self.metrics.registry)
        except OSError as e:
            raise ConfigError(f"--metrics-port {self.addr}:{self.port}: cannot listen ({e}); "
                              "give each worker on this machine its own port") from e
        self.port = int(self._server.server_port)
        print(f"[docstream] metrics: http://{self.addr}:{self.port}/metrics "
              f"(worker {self.metrics.worker})", file=sys.stderr, flush=True)
        return self.port

    def refresh(self, force: bool = False) -> None:
        """Recompute the lag if it is due; a failure (store or broker away) keeps the last
        values: the outage gauges say why."""
        now = time.monotonic()
        if not force and now < self._next_lag:
            return
        self._next_lag = now + self.lag_every_s
        try:
            _, lags = self.lag_now()
        except Exception as e:  # a metric must never stop the job
            log.debug("metrics: lag unavailable: %s", e)
            return
        if lags:
            self.metrics.set_lag(lags)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.metrics.registry.unregister(self._collector)


def model_identity(model_dir: str, noop: str = "noop") -> tuple[str, str]:
    """(name, version) of the model the job starts with (its manifest; no weights loaded)."""
    if model_dir == noop:
        return "noop", "0"
    from docstream.model.artifact import read_manifest

    m = read_manifest(model_dir)
    return m.name, m.version


def parse_listen(value: str) -> tuple[str, int]:
    """`--metrics-port [HOST:]PORT` → (address, port); the address defaults to 0.0.0.0.

    >>> parse_listen("9101"), parse_listen("127.0.0.1:0")
    (('0.0.0.0', 9101), ('127.0.0.1', 0))
    """
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--metrics-port {value!r}: expected [HOST:]PORT with PORT 0..65535 "
                          "(0: any free port)")
    return host.strip("[]") or "0.0.0.0", int(port)

