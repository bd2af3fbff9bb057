"""ONE streaming job rides out two PostgreSQL restarts and a broker restart while 3,000 posts
and poison messages of every class flow (real broker, real PostgreSQL, the job as a
subprocess): it never exits, every good post is stored once, every bad message is dead-
lettered once (a record batch garbled on the broker's disk as its offsets), and every
partition's stored position reaches the end of its topic."""

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
from tests.streaming.test_unreadable import (
    corrupt_on_disk,
    log_codecs,
    produce_batch,
    segment_of,
)

CODECS = ("gzip", "snappy", "lz4", "zstd")


def test_one_job_rides_out_store_and_broker_restarts_with_poison_messages(
    kafka_bootstrap: str, kafka_topic: Callable[..., str], pg_url: str,
    stream_jobs: Callable[..., StreamJob],
) -> None:
    topic = kafka_topic(3)
    # A second, one-partition topic whose middle lz4 batch (offsets 10-29) is garbled in the
    # broker's segment file (CRC rewritten: only decompression fails, so a broker recovery
    # would keep it): 20 unreadable records between readable posts.
    side = kafka_topic(1)
    side_posts = make_posts(35, "os", seed=13)
    for chunk in (side_posts[:10], side_posts[10:30], side_posts[30:]):
        produce_batch(kafka_bootstrap, side, [v for _, v in chunk], "lz4")
    assert log_codecs(kafka_bootstrap, side) == [(0, 9, 3), (10, 29, 3), (30, 34, 3)]
    corrupt_on_disk(segment_of(kafka_bootstrap, side), 10, keep_crc=True)
    unreadable = {f"kafka:{side}:0:{o}" for o in range(10, 30)}
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

    job = stream_jobs(kafka_bootstrap, f"{topic},{side}", "go", pg_url)
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
    ends = {**end_offsets(kafka_bootstrap, topic), **end_offsets(kafka_bootstrap, side)}
    wait_for(lambda: stored_positions(pg_url, "go") == ends or not job.alive(), 60,
             "the stored positions to reach the end of the topics")
    assert job.alive(), job.tail()
    out = stop_clean(job)

    readable = [*posts, *side_posts[:10], *side_posts[30:]]
    assert_exact(pg_url, {k.decode() for k, _ in readable}, "go")
    dead = rows(pg_url, 'select position, key, reason, stage, error, "count" from dead_letters')
    for r in dead:
        assert r.reason and r.stage and r.error and r.count == 1, r
    # each bad message once; the garbled batch as its 20 offsets
    assert sorted(r.key for r in dead if r.position not in unreadable) == sorted(bad_keys)
    assert {r.position for r in dead if r.reason == "unreadable_record"} == unreadable
    assert count_dead(pg_url) == len(bad) + len(unreadable)
    assert stored_positions(pg_url, "go") == ends
    # What an outage looks like from outside: one line when it starts, one when it ends.
    assert out.count("the store is unavailable") >= 2, out[-4000:]
    assert out.count("the store is back after") >= 2, out[-4000:]
    print("\n".join(line for line in out.splitlines() if "the store is" in line))
