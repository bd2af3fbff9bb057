"""Polls sized by work, end to end: a backlog of long articles is written in several
token-bounded write units (the first one small), every post exactly once, and the run's
summary reports model loading, the time to the first result and the steady throughput apart.
Real Kafka broker, real PostgreSQL, `docstream run` as a subprocess (--model noop)."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable
from contextlib import redirect_stdout

import pytest

from docstream.commands.run import print_summary
from docstream.errors import ConfigError
from docstream.pipelines.stream_options import StreamOptions, default_poll_tokens, poll_tokens_for
from docstream.pipelines.summary import StreamSummary
from docstream.streaming.records import estimated_tokens
from tests.news_posts import LABELS, long_post
from tests.pipelines.test_stream_kafka import START_S, assert_exact
from tests.stream_helpers import StreamJob, count_results, publish, rows, wait_for

N_LONG = 240  # 80 a partition: well under --max-records, so one poll each without a budget


def long_posts(n: int, prefix: str, seed: int = 0) -> list[tuple[bytes, bytes]]:
    """(key, value) for n generated articles of at least 400 words."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        doc_id = f"{prefix}-{i}"
        text = long_post(rng, LABELS[i % len(LABELS)], 400)
        out.append((doc_id.encode(), json.dumps({"id": doc_id, "text": text, "kind": "news",
                                                 "source": "test"}).encode()))
    return out


def test_long_backlog_is_written_in_token_bounded_units(
    kafka_bootstrap: str, kafka_topic: Callable[..., str], pg_url: str,
    stream_jobs: Callable[..., StreamJob],
) -> None:
    topic = kafka_topic(3)
    posts = long_posts(N_LONG, "lat")
    per_post = max(estimated_tokens(v) for _, v in posts)
    assert per_post > 400  # long: ~440 estimated tokens each
    publish(kafka_bootstrap, topic, posts)
    job = stream_jobs(kafka_bootstrap, topic, "glat", pg_url, extra=["--json"])
    wait_for(lambda: count_results(pg_url) >= N_LONG or not job.alive(), START_S + 60,
             f"{N_LONG} results")
    rc = job.stop()
    assert rc == 0, job.tail()
    assert_exact(pg_url, {k.decode() for k, _ in posts}, "glat")

    # Each write transaction stamps its rows with one processed_at: the write units.
    units = [n for _, n in rows(pg_url, "select processed_at, count(*) from classifications "
                                        "group by processed_at order by processed_at")]
    budget = 32768  # the CPU default, reached after the first polls of each partition
    assert max(units) <= budget // per_post + 1, units
    assert len(units) >= 9, units  # without a budget: one unit per partition
    assert units[0] <= 4096 // per_post + 1, units  # the first poll: an eighth of the budget

    out = job.out.read_text()
    summary = json.loads(out[out.index("{"):])
    assert summary["inputs"] == N_LONG and summary["classified"] == N_LONG
    assert summary["write_units"] == len(units)
    assert summary["model_load_s"] is not None and summary["model_ready_s"] is not None
    first = summary["first_result_s"]
    assert first is not None and summary["model_ready_s"] <= first < summary["seconds"]
    assert summary["startup_seconds"] == first
    assert summary["steady_docs_per_s"] and summary["steady_docs_per_s"] > 0
    assert summary["docs_per_s"] == summary["steady_docs_per_s"]


def test_stream_summary_prints_load_first_result_and_throughput_apart() -> None:
    s = StreamSummary(run_id="stream-g", inputs=2100, classified=2100, dead_letters=0,
                      labels={}, dead_by_reason={}, needs_review=0, seconds=189.1,
                      startup_seconds=14.9, model_load_s=10.84, model_ready_s=13.2,
                      first_result_s=14.9, steady_docs_per_s=11.93, write_units=40)
    buf = io.StringIO()
    with redirect_stdout(buf):
        print_summary(s.as_dict())
    line = buf.getvalue().splitlines()[0]
    assert line == ("run stream-g: 2,100 inputs in 189.1 s; model loaded in 10.8 s (ready at "
                    "13.2 s), first result at 14.9 s, then 11.9 docs/s")
    assert s.as_dict()["docs_per_s"] == 11.9
    empty = StreamSummary(run_id="stream-g", inputs=0, classified=0, dead_letters=0, labels={},
                          dead_by_reason={}, needs_review=0, seconds=5.0)
    buf = io.StringIO()
    with redirect_stdout(buf):
        print_summary(empty.as_dict())
    assert "model loaded in unknown (ready at unknown), first result at unknown, then unknown " \
           "docs/s" in buf.getvalue()


def test_poll_token_budget_defaults_and_bounds() -> None:
    assert default_poll_tokens("cpu") == 32768  # 8 CPU model batches of 4,096 tokens
    assert default_poll_tokens("cuda:0") == 8 * 65536
    assert poll_tokens_for(StreamOptions(), "cpu") == 32768
    assert poll_tokens_for(StreamOptions(poll_tokens=2000), "cpu") == 2000
    assert poll_tokens_for(StreamOptions(poll_tokens=0), "cpu") is None  # only --max-records
    with pytest.raises(ConfigError, match="--poll-tokens"):
        StreamOptions(poll_tokens=-1)
