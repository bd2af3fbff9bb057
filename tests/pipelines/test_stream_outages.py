"""ONE streaming job rides out two PostgreSQL restarts and a broker restart while 3,000 posts
and poison messages of every class flow (real broker, real PostgreSQL, the job as a
subprocess): it never exits, every good post is stored once, every bad message is dead-
lettered once, and every partition's stored position reaches the end of its topic."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

from tests.pipelines.test_stream_kafka import (
    START_S,
    assert_exact,
    end_offsets,
    stop_clean,
    stored_positions,
)
from tests.stream_helpers import (
    StreamJob,
    count_dead,
    count_results,
    dev_services,
    make_bad,
    make_poison,
    make_posts,
    publish,
    rows,
    wait_for,
)

CODECS = ("gzip", "snappy", "lz4", "zstd")


def test_one_job_rides_out_store_and_broker_restarts_with_poison_messages(
    kafka_bootstrap: str, kafka_topic: Callable[..., str], pg_url: str,
    stream_jobs: Callable[..., StreamJob],
) -> None:
    topic = kafka_topic(3)
    posts = make_posts(3000, "o", seed=11)
    bad = [(k, v) for k, v, _ in make_bad(60, "o")] + make_poison("o")
    bad_keys = {k for k, _ in bad}
    # 1,000 posts and the poison first, part of the posts compressed with each codec that
    # real producers use; the other 2,000 posts flow while the services restart.
    head: list[tuple[bytes | None, bytes]] = [*posts[:800], *bad]
    random.Random(12).shuffle(head)
    publish(kafka_bootstrap, topic, head)
    for i, codec in enumerate(CODECS):
        publish(kafka_bootstrap, topic, posts[800 + 50 * i: 850 + 50 * i],
                compression_type=codec)

    job = stream_jobs(kafka_bootstrap, topic, "go", pg_url)
    wait_for(lambda: count_results(pg_url) >= 900 or not job.alive(), START_S, "900 results")
    producer = threading.Thread(target=publish, args=(kafka_bootstrap, topic, posts[1000:]),
                                kwargs={"rate": 80.0}, daemon=True)
    producer.start()

    # PostgreSQL twice, while results are being written; then the broker.
    for restart in ("postgres", "postgres", "kafka"):
        before = count_results(pg_url)
        wait_for(lambda b=before: count_results(pg_url) >= b + 150 or not job.alive(), 90,
                 f"150 more results before restarting {restart}")
        assert job.alive(), job.tail()
        dev_services("restart", restart)

    producer.join(timeout=240)
    assert not producer.is_alive()
    wait_for(lambda: count_results(pg_url) >= 3000 or not job.alive(), 180,
             "3,000 results after the restarts")
    wait_for(lambda: stored_positions(pg_url, "go") == end_offsets(kafka_bootstrap, topic)
             or not job.alive(), 60, "the stored positions to reach the end of the topic")
    assert job.alive(), job.tail()
    out = stop_clean(job)

    assert_exact(pg_url, {k.decode() for k, _ in posts}, "go")
    dead = rows(pg_url, 'select key, reason, stage, error, "count" from dead_letters')
    assert sorted(r.key for r in dead) == sorted(bad_keys)  # each one, once
    for r in dead:
        assert r.reason and r.stage and r.error and r.count == 1, r
    assert count_dead(pg_url) == len(bad)
    assert stored_positions(pg_url, "go") == end_offsets(kafka_bootstrap, topic)
    # What an outage looks like from outside: one line when it starts, one when it ends.
    assert out.count("the store is unavailable") >= 2, out[-4000:]
    assert out.count("the store is back after") >= 2, out[-4000:]
    print("\n".join(line for line in out.splitlines() if "the store is" in line))
