"""Several workers share a topic through the consumer group (real broker, real PostgreSQL,
`docstream run` subprocesses with the no-op model): exact handover across kill -9 and a late
joiner, no stored position ever going back, and partitions added to the topic picked up
without a restart."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewPartitions

from tests.pipelines.test_stream_kafka import START_S, end_offsets, stop_clean, stored_positions
from tests.stream_helpers import (
    StreamJob,
    count_dead,
    count_results,
    make_posts,
    publish,
    rows,
    scalar,
    wait_for,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class PositionLog:
    """Samples stream_offsets every `every_s` in a thread: (t, topic, partition, position,
    epoch, owner) rows, to check that no position ever went back."""

    def __init__(self, db_url: str, group: str, every_s: float = 0.2) -> None:
        self.db_url, self.group, self.every_s = db_url, group, every_s
        self.samples: list[tuple[float, str, int, int, int, str | None]] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> float:
        return round(time.monotonic() - self._t0, 2)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                got = rows(self.db_url, "select topic, partition, next_offset, epoch, owner "
                           "from stream_offsets where consumer_group = :g", g=self.group)
            except Exception:  # the table may not exist yet
                continue
            t = round(time.monotonic() - self._t0, 2)
            self.samples += [(t, tp, p, o, e, w) for tp, p, o, e, w in got]

    def close(self, name: str) -> list[tuple[float, str, int, int, int, str | None]]:
        self._stop.set()
        self._thread.join(10)
        ARTIFACTS.mkdir(exist_ok=True)
        with open(ARTIFACTS / f"{name}-positions.jsonl", "w", encoding="utf-8") as f:
            for s in self.samples:
                f.write(json.dumps(dict(zip(("t", "topic", "partition", "position", "epoch",
                                             "owner"), s, strict=True))) + "\n")
        return self.samples


def went_back(samples: list[tuple[float, str, int, int, int, str | None]]) -> list[str]:
    last: dict[tuple[str, int], tuple[int, int]] = {}
    bad = []
    for t, topic, p, pos, epoch, _ in samples:
        before = last.get((topic, p))
        if before is not None and (pos < before[0] or epoch < before[1]):
            bad.append(f"{topic}/{p} at {t} s: {before} -> {(pos, epoch)}")
        last[(topic, p)] = (pos, epoch)
    return bad


def worker(stream_jobs: Callable[..., StreamJob], bootstrap: str, topic: str, group: str,
           db_url: str, name: str) -> StreamJob:
    return stream_jobs(bootstrap, topic, group, db_url,
                       extra=["--worker", name, "--explain", "off"])


def wrote(db_url: str, group: str, name: str) -> int:
    return int(scalar(db_url, "select count(*) from audit_log where run_id = :r",
                      r=f"stream-{group}-{name}") or 0)


def planned(job: StreamJob) -> bool:
    return "(plan " in job.output() or "owns no partition" in job.output()


def test_three_workers_kill_9_one_start_a_fourth_exactly_6000_rows(
    kafka_bootstrap: str, kafka_topic: Callable[..., str], pg_url: str,
    stream_jobs: Callable[..., StreamJob],
) -> None:
    topic, group = kafka_topic(6), "gh"
    posts = make_posts(6000, "h", seed=6)
    positions = PositionLog(pg_url, group)
    producer = threading.Thread(target=publish, args=(kafka_bootstrap, topic, posts),
                                kwargs={"rate": 80.0}, daemon=True)
    producer.start()
    a, b, c = (worker(stream_jobs, kafka_bootstrap, topic, group, pg_url, n)
               for n in ("w1", "w2", "w3"))
    jobs = {"w1": a, "w2": b, "w3": c}
    wait_for(lambda: all(planned(j) for j in jobs.values()) or not all(
        j.alive() for j in jobs.values()), START_S, "three workers to plan")
    wait_for(lambda: count_results(pg_url) >= 1000, START_S, "1,000 rows")
    for name in jobs:  # every worker has written before one of them is killed
        wait_for(lambda n=name: wrote(pg_url, group, n), START_S, f"{name}'s first rows")
    assert all(j.alive() for j in jobs.values()), {n: j.tail() for n, j in jobs.items()}
    b.kill_group()  # mid-run: its partitions go to the others after the session timeout
    killed_at = positions.now()
    last_owner = {p: w for t, _, p, _, _, w in positions.samples if t <= killed_at}
    b_owned = {p for p, w in last_owner.items() if w == "w2"}
    assert b_owned, f"w2 owned nothing when it was killed: {last_owner}"
    wait_for(lambda: count_results(pg_url) >= 1800, START_S, "1,800 rows")
    d = worker(stream_jobs, kafka_bootstrap, topic, group, pg_url, "w4")
    jobs["w4"] = d
    wait_for(lambda: wrote(pg_url, group, "w4"), START_S, "the fourth worker's first rows")
    producer.join(timeout=120)
    wait_for(lambda: count_results(pg_url) >= 6000, START_S, "6,000 rows")
    wait_for(lambda: stored_positions(pg_url, group) == end_offsets(kafka_bootstrap, topic),
             60, "every position at the end of its partition")
    outs = {n: stop_clean(j) for n, j in jobs.items() if n != "w2"}
    samples = positions.close("handover")

    ids = {k.decode() for k, _ in posts}
    got = [r[0] for r in rows(pg_url, "select id from classifications")]
    assert len(got) == 6000 and set(got) == ids
    assert count_dead(pg_url) == 0
    # every input recorded once in the audit log, whichever worker wrote it
    assert scalar(pg_url, "select count(*) from audit_log") == 6000
    assert scalar(pg_url, "select count(distinct position) from audit_log") == 6000
    # each worker its own run id and runs row; the killed one never finished its row
    runs = dict(rows(pg_url, "select run_id, status from runs"))
    assert runs == {f"stream-{group}-w1": "stopped", f"stream-{group}-w2": "running",
                    f"stream-{group}-w3": "stopped", f"stream-{group}-w4": "stopped"}
    writers = {r[0] for r in rows(pg_url, "select distinct run_id from audit_log")}
    assert f"stream-{group}-w4" in writers and f"stream-{group}-w2" in writers
    # the killed worker's partitions were claimed again (a higher epoch, another owner)
    final = {p: (e, w) for _, _, p, _, e, w in samples[-6:]}
    assert all(final[p][0] >= 2 and final[p][1] != "w2" for p in b_owned), final
    assert not went_back(samples), went_back(samples)[:5]
    # how long the killed worker's partitions waited for a new owner (the session timeout,
    # 10 s, streaming/membership.py, then a rebalance and a plan)
    taken = {p: min(t for t, _, q, _, _, w in samples if q == p and t > killed_at and w != "w2")
             for p in b_owned}
    waits = {p: round(t - killed_at, 1) for p, t in taken.items()}
    print(f"\nhandover: w2 killed at {killed_at} s; its partitions claimed again after {waits} s")
    assert max(waits.values()) < 30, waits
    assert all("worker w" in out for out in outs.values())


def test_partitions_added_to_the_topic_are_read_without_a_restart(
    kafka_bootstrap: str, kafka_topic: Callable[..., str], pg_url: str,
    stream_jobs: Callable[..., StreamJob],
) -> None:
    topic, group = kafka_topic(2), "gn"
    publish(kafka_bootstrap, topic, make_posts(100, "n0", seed=7))
    job = worker(stream_jobs, kafka_bootstrap, topic, group, pg_url, "solo")
    wait_for(lambda: count_results(pg_url) >= 100 or not job.alive(), START_S, "100 rows")
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_partitions({topic: NewPartitions(total_count=4)})
    finally:
        admin.close()
    added = time.monotonic()
    posts = make_posts(50, "n1", seed=8)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        sent = [producer.send(topic, value=value, key=key, partition=2 + i % 2)
                for i, (key, value) in enumerate(posts)]  # into the new partitions only
        producer.flush()
        assert all(f.get(timeout=30) for f in sent)
    finally:
        producer.close()
    wait_for(lambda: count_results(pg_url) >= 150 or not job.alive(), 60,
             "the posts of the new partitions")
    seconds = time.monotonic() - added
    out = stop_clean(job)
    assert {p for (_, p) in stored_positions(pg_url, group)} == {0, 1, 2, 3}
    assert stored_positions(pg_url, group) == end_offsets(kafka_bootstrap, topic)
    assert f"{topic}/2, {topic}/3" in out or f"{topic}/3" in out
    print(f"new partitions read {seconds:.1f} s after they were added")
    assert seconds < 30
