"""Hot swap: a running stream started with NAME@production follows a promotion, on a real
Kafka broker and PostgreSQL with the real weights, without a restart."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine

from docstream.model.artifact import read_manifest
from docstream.model.bundled import bundled_model_dir
from docstream.pipelines.model_source import production_name
from docstream.pipelines.model_watch import Located, ModelWatch
from docstream.store.migrate import upgrade
from docstream.store.registry import promote, register
from tests.stream_helpers import StreamJob, count_results, make_posts, publish, rows, scalar, wait_for

START_S = 120


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_watch_checks_at_most_every_interval_and_only_reports_changes() -> None:
    calls: list[int] = []
    where = {"path": "/m/v1"}

    def locate() -> Located:
        calls.append(1)
        return Located(where["path"], f"m@{where['path'][-2:]}")

    clock = FakeClock()
    watch = ModelWatch(locate, interval_s=10, clock=clock)
    assert watch.check("/m/v1") is None  # unchanged
    where["path"] = "/m/v2"
    clock.now = 5
    assert watch.check("/m/v1") is None and len(calls) == 1  # not due yet
    clock.now = 10
    assert watch.check("/m/v1") == Located("/m/v2", "m@v2")


def test_watch_survives_lookup_errors_and_skips_a_refused_artifact() -> None:
    state = {"fail": True}

    def locate() -> Located:
        if state["fail"]:
            raise OSError("store down")
        return Located("/m/broken", "m@2")

    clock = FakeClock()
    watch = ModelWatch(locate, interval_s=1, clock=clock)
    assert watch.check("/m/v1") is None  # logged, not raised
    state["fail"] = False
    clock.now = 1
    found = watch.check("/m/v1")
    assert found is not None
    watch.refuse(found, ValueError("corrupt"))
    clock.now = 2
    assert watch.check("/m/v1") is None  # not retried every interval


def test_handler_keeps_running_model_when_new_artifact_is_broken(tmp_path: Path) -> None:
    from docstream.pipelines.handler import DocstreamModelHandler

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    watch = ModelWatch(lambda: Located(str(broken), "m@2"), interval_s=0.5)
    handler = DocstreamModelHandler("noop", watch=watch)
    model = handler.load_model()
    handler._maybe_switch(model)
    assert model.ref.name == "noop" and handler.model_dir == "noop"
    assert str(broken) in watch._refused


def test_production_name() -> None:
    assert production_name("news-topic@production") == "news-topic"
    assert production_name("news-topic@1.0.0") is None
    assert production_name("/no/such/dir") is None


def second_version(tmp_path: Path, version: str) -> Path:
    """The bundled artifact under another version number (same weights, so same predictions:
    the test checks which version the rows name, not what it predicts)."""
    target = tmp_path / f"news-topic-{version}"
    shutil.copytree(bundled_model_dir(), target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["version"] = version
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return target


def test_running_stream_switches_to_a_newly_promoted_version(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: Callable[..., str], pg_url: str,
    stream_jobs: Callable[..., StreamJob],
) -> None:
    v1 = read_manifest(bundled_model_dir())
    v2_dir = second_version(tmp_path, "9.0.0")
    engine = create_engine(pg_url)
    try:
        upgrade(engine)
        register(engine, name=v1.name, version=v1.version, path=str(bundled_model_dir()),
                 weights_sha256=v1.weights_sha256)
        register(engine, name=v1.name, version="9.0.0", path=str(v2_dir),
                 weights_sha256=v1.weights_sha256)
        promote(engine, v1.name, v1.version)

        topic = kafka_topic(1)
        first = make_posts(60, "before", seed=1)
        publish(kafka_bootstrap, topic, first)
        job = stream_jobs(kafka_bootstrap, topic, "gswap", pg_url,
                          model=f"{v1.name}@production", extra=["--watch-model-secs", "1"])
        wait_for(lambda: count_results(pg_url) >= 60 or not job.alive(), START_S,
                 f"60 results from {v1.version}\n{job.tail()}")
        assert job.alive(), job.tail()
        assert {r[0] for r in rows(pg_url, "select distinct model_version from classifications")
                } == {v1.version}

        promote(engine, v1.name, "9.0.0")
        # Keep posting small batches until a row names the new version.
        sent = list(first)
        deadline = time.monotonic() + 120
        k = 0
        while not scalar(pg_url, "select count(*) from classifications "
                                 "where model_version = '9.0.0'"):
            assert job.alive(), job.tail()
            assert time.monotonic() < deadline, f"no row from 9.0.0 after 120 s\n{job.tail()}"
            batch = make_posts(10, f"after{k}", seed=100 + k)
            publish(kafka_bootstrap, topic, batch)
            sent += batch
            k += 1
            time.sleep(2)
        late = make_posts(40, "late", seed=7)
        publish(kafka_bootstrap, topic, late)
        sent += late
        wait_for(lambda: count_results(pg_url) >= len(sent), 120, f"{len(sent)} results")
        rc = job.stop()
        assert rc == 0, job.tail()
    finally:
        engine.dispose()

    got = [r[0] for r in rows(pg_url, "select id from classifications")]
    assert sorted(got) == sorted(k.decode() for k, _ in sent)  # nothing lost, nothing doubled
    late_versions = {r[0] for r in rows(
        pg_url, "select distinct model_version from classifications where id like 'late-%'")}
    assert late_versions == {"9.0.0"}  # once switched, it stays switched
    assert "switching model" in job.output()
