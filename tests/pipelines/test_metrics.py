"""Prometheus metrics of the streaming job (pipelines.metrics): the recording in one process,
the exporter, the flags, and end to end with a real broker and store: `docstream run
--metrics-port` scraped while posts and bad messages flow."""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from docstream.errors import ConfigError
from docstream.model.artifact import read_manifest
from docstream.model.bundled import bundled_model_dir
from docstream.pipelines import metrics as metrics_mod
from docstream.pipelines.metrics import (
    Exporter,
    JobMetrics,
    MetricsConfig,
    job_metrics,
    model_identity,
    parse_listen,
)
from docstream.pipelines.outage import Outage
from docstream.pipelines.stream_fns import KafkaBatchToRaw
from docstream.pipelines.stream_options import StreamOptions
from docstream.schemas.classification import ModelRef
from docstream.streaming.flow import InFlight
from docstream.streaming.records import KafkaBatch, KafkaRecord
from tests.stream_helpers import StreamJob, make_bad, make_posts, publish, wait_for

START_S = 120  # a job's start (imports, Prism) plus slack on a busy 2-core machine

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """{(sample name, sorted labels): value} of an exposition."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    """The one sample `metric` whose labels include `labels` (None: absent)."""
    hits = [v for (n, ls), v in samples.items()
            if n == metric and labels.items() <= dict(ls).items()]
    assert len(hits) <= 1, (metric, labels, hits)
    return hits[0] if hits else None


def labelled(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(ls)[label]: v for (n, ls), v in samples.items() if n == name}


def model(name: str = "news", version: str = "1") -> ModelRef:
    return ModelRef(name=name, version=version, weights_sha256="0" * 64)


def outcome(flagged: int, plain: int, reasons: list[str], ref: ModelRef | None = None) -> Any:
    """Duck-typed Outcome: what JobMetrics.batch_written reads."""
    ref = ref or model()
    results = [SimpleNamespace(result=SimpleNamespace(needs_review=i < flagged, model=ref))
               for i in range(flagged + plain)]
    failures = [SimpleNamespace(dead_letter=SimpleNamespace(reason=r)) for r in reasons]
    return SimpleNamespace(results=results, failures=failures)


# ------------------------------------------------------------------------ in one process


def test_written_batches_count_docs_reasons_review_share_and_latencies() -> None:
    m = JobMetrics("w1")
    key = ("posts", 0, 0, 6)
    now_ms = int(time.time() * 1000)
    m.batch_started(key, [now_ms - 2000, now_ms - 2000, None, -1, now_ms - 2000, now_ms])
    m.batch_written(key, outcome(flagged=1, plain=3, reasons=["schema", "schema"]))
    m.batch_written(None, outcome(flagged=0, plain=0, reasons=["invalid_json"]))
    s = parse(generate_latest(m.registry).decode())
    assert value(s, "docstream_docs_processed_total", outcome="classified") == 4
    assert value(s, "docstream_docs_processed_total", outcome="dead_letter") == 3
    assert labelled(s, "docstream_dead_letters_total", "reason") == {"schema": 2,
                                                                     "invalid_json": 1}
    assert value(s, "docstream_needs_review_total") == 1
    assert value(s, "docstream_needs_review_share") == 0.25
    assert value(s, "docstream_write_batch_seconds_count") == 1  # the keyed batch only
    assert value(s, "docstream_produce_to_row_seconds_count") == 4  # unknown times skipped
    assert value(s, "docstream_produce_to_row_seconds_bucket", le="1.0") == 1
    assert 6.0 <= value(s, "docstream_produce_to_row_seconds_sum") < 7.0
    assert value(s, "docstream_model_info", name="news", version="1") == 1
    assert {dict(ls)["worker"] for _, ls in s} == {"w1"}


def test_the_model_info_follows_a_hot_swap() -> None:
    m = JobMetrics("w1")
    m.set_model("news", "1")
    m.batch_written(None, outcome(0, 2, [], model("news", "2")))
    s = parse(generate_latest(m.registry).decode())
    assert labelled(s, "docstream_model_info", "version") == {"2": 1.0}


def test_lag_of_a_partition_no_longer_read_goes() -> None:
    m = JobMetrics("w1")
    m.set_lag({("a", 0): 5, ("a", 1): 0})
    m.set_lag({("a", 1): 2})
    s = parse(generate_latest(m.registry).decode())
    assert labelled(s, "docstream_consumer_lag", "partition") == {"1": 2.0}


def test_tracked_batches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_mod, "MAX_TRACKED_BATCHES", 3)
    m = JobMetrics("w1")
    for i in range(5):
        m.batch_started(("t", 0, i, i + 1), [0])
    assert list(m._started) == [("t", 0, 2, 3), ("t", 0, 3, 4), ("t", 0, 4, 5)]


def test_the_dofns_count_into_the_launchers_metrics() -> None:
    """KafkaBatchToRaw finds, by worker label, the JobMetrics this process serves."""
    config = MetricsConfig(f"w-{os.getpid()}-dofn", os.getpid())
    fn = KafkaBatchToRaw(config)
    fn.setup()
    batch = KafkaBatch("posts", 1, 10, 12, [KafkaRecord("posts", 1, 10, b"k", b"{}", 5),
                                             KafkaRecord("posts", 1, 11, b"k", b"{}", 6)])
    assert len(next(iter(fn.process(batch))).inputs) == 2
    try:
        assert job_metrics(config)._started[("posts", 1, 10, 12)].timestamps_ms == [5, 6]
    finally:
        metrics_mod.forget(config.worker)


def test_exporter_serves_outage_gate_and_lag(monkeypatch: pytest.MonkeyPatch) -> None:
    m = JobMetrics("w-exp")
    outage = Outage(f"store:test-{os.getpid()}-{id(m)}")
    gate = InFlight(f"metrics-test-{id(m)}", limit=10)
    calls: list[int] = []

    def lag_now() -> tuple[int, dict[tuple[str, int], int]]:
        calls.append(1)
        return 7, {("posts", 0): 7}

    exporter = Exporter(m, "127.0.0.1", 0, lag_now=lag_now, outage=outage, gate=gate,
                        lag_every_s=60)
    try:
        port = exporter.start()
        exporter.refresh()
        exporter.refresh()  # not due again for a minute
        assert len(calls) == 1
        gate.add(("posts", 0, 0, 3), records=3)
        outage.failed(RuntimeError("down"), then="waiting")
        s = parse(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10)
                  .read().decode())
        assert value(s, "docstream_consumer_lag", topic="posts", partition="0") == 7
        assert value(s, "docstream_store_outage") == 1
        assert value(s, "docstream_store_outages_total") == 1
        assert value(s, "docstream_in_flight_records") == 3
        assert outage.recovered() is not None
        s = parse(generate_latest(m.registry).decode())
        assert value(s, "docstream_store_outage") == 0
        assert value(s, "docstream_store_outage_current_seconds") == 0
        assert value(s, "docstream_store_outage_seconds_total") > 0
    finally:
        exporter.close()
        gate.reset()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_a_port_in_use_is_one_line() -> None:
    first = Exporter(JobMetrics("a"), "127.0.0.1", 0, lag_now=lambda: (None, {}),
                     outage=Outage("store:x"))
    port = first.start()
    try:
        second = Exporter(JobMetrics("b"), "127.0.0.1", port, lag_now=lambda: (None, {}),
                          outage=Outage("store:x"))
        with pytest.raises(ConfigError, match="its own port"):
            second.start()
    finally:
        first.close()


def test_flags() -> None:
    assert parse_listen("9101") == ("0.0.0.0", 9101)
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:9102") == ("::1", 9102)
    for bad in ("x", "1:70000", ""):
        with pytest.raises(ConfigError):
            parse_listen(bad)
    with pytest.raises(ConfigError):
        StreamOptions(metrics_worker="")


def test_model_identity_of_the_bundled_model() -> None:
    assert model_identity("noop") == ("noop", "0")
    manifest = read_manifest(bundled_model_dir())
    assert model_identity(str(bundled_model_dir())) == (manifest.name, manifest.version)


def test_batch_jobs_refuse_the_metrics_flags(tmp_path: Any,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from docstream.cli import main

    assert main(["run", "--sink", f"sqlite:///{tmp_path}/x.db", "--model", "noop",
                 "--metrics-port", "0"]) == 2
    assert "for the streaming job" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()


# ---------------------------------------------------------------------------- end to end


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return parse(r.read().decode())


def test_stream_job_exports_its_metrics(
    kafka_bootstrap: str, kafka_topic: Callable[..., str], pg_url: str,
    stream_jobs: Callable[..., StreamJob],
) -> None:
    """N good + M bad posts through a 2-partition topic: the counters move by exactly that,
    dead letters by reason match the bad kinds, lag drains to 0, histograms fill, and every
    sample carries the worker label."""
    topic = kafka_topic(2)
    job = stream_jobs(kafka_bootstrap, topic, "gm", pg_url, flush_secs=0.2, extra=[
        "--metrics-port", "127.0.0.1:0", "--metrics-worker", "w-test"])
    found = wait_for(lambda: re.search(r"metrics: http://127\.0\.0\.1:(\d+)/metrics", job.output())
                     or not job.alive(), START_S, "the metrics line")
    assert job.alive(), job.tail()
    port = int(found.group(1))
    before = wait_for(lambda: (s := scrape(port)) and len(
        labelled(s, "docstream_consumer_lag", "partition")) == 2 and s, 30, "the lag gauges")
    assert value(before, "docstream_model_info", name="noop", version="0") == 1
    done0 = sum(labelled(before, "docstream_docs_processed_total", "outcome").values())

    n, bad = 40, make_bad(12, "m")
    publish(kafka_bootstrap, topic, [*make_posts(n, "m"), *((k, v) for k, v, _ in bad)])
    total = n + len(bad)

    def drained() -> Samples | None:
        s = scrape(port)
        done = sum(labelled(s, "docstream_docs_processed_total", "outcome").values())
        lags = labelled(s, "docstream_consumer_lag", "partition")
        return s if done - done0 >= total and set(lags.values()) == {0.0} else None

    after = wait_for(lambda: drained() or not job.alive(), START_S, "counters and lag")
    assert job.alive(), job.tail()
    assert value(after, "docstream_docs_processed_total", outcome="classified") == n
    assert value(after, "docstream_docs_processed_total", outcome="dead_letter") == len(bad)
    assert labelled(after, "docstream_dead_letters_total", "reason") == Counter(
        kind for _, _, kind in bad)
    assert value(after, "docstream_needs_review_total") == 0  # the no-op model never flags
    assert value(after, "docstream_needs_review_share") == 0
    assert 1 <= value(after, "docstream_write_batch_seconds_count") <= total
    assert value(after, "docstream_produce_to_row_seconds_count") == total
    assert value(after, "docstream_produce_to_row_seconds_sum") > 0
    assert value(after, "docstream_store_outage") == 0
    assert value(after, "docstream_in_flight_records") == 0
    assert value(after, "docstream_model_info", name="noop", version="0") == 1
    assert {dict(ls).get("worker") for _, ls in after} == {"w-test"}
    assert job.stop(sig=signal.SIGTERM) == 0, job.tail()
