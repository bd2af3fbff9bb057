"""Helpers of the streaming tests: generated posts (tests/news_posts.py), bad messages,
publishing, the job as a subprocess, database look-ups. The fixtures are in kafka_fixtures.py."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from tests.news_posts import post_texts
from tests.services import BOOTSTRAP as BOOTSTRAP  # re-exported for the streaming tests
from tests.services import REPO
from tests.services import dev_services as dev_services


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def make_posts(n: int, prefix: str, seed: int = 0) -> list[tuple[bytes, bytes]]:
    """(key, value) for n valid, generated news posts with ids prefix-0 … prefix-(n-1)."""
    out = []
    for i, t in enumerate(post_texts(n, seed)):
        doc_id = f"{prefix}-{i}"
        out.append((doc_id.encode(), json.dumps({"id": doc_id, "text": t, "kind": "news",
                                                 "source": "test"}).encode()))
    return out


BAD_KINDS = ("invalid_json", "invalid_utf8", "schema", "oversize", "binary", "empty_text")


def make_bad(n: int, prefix: str) -> list[tuple[bytes | None, bytes, str]]:
    """(key, value, expected reason) for n bad messages, cycling through BAD_KINDS."""
    out: list[tuple[bytes | None, bytes, str]] = []
    for i in range(n):
        kind = BAD_KINDS[i % len(BAD_KINDS)]
        doc_id = f"{prefix}-bad-{i}"
        if kind == "invalid_json":
            value = b'{"id": "' + doc_id.encode() + b'", "text": "unterminated'
        elif kind == "invalid_utf8":
            value = b'{"id": "' + doc_id.encode() + b'", "text": "caf\xe9 \xff"}'
        elif kind == "schema":
            value = json.dumps({"id": doc_id, "body": "no text field"}).encode()
        elif kind == "oversize":
            value = json.dumps({"id": doc_id, "text": "word " * 21_000}).encode()
        elif kind == "binary":
            value = b"\x00\x01\x02binary" + doc_id.encode()
        else:
            value = json.dumps({"id": doc_id, "text": "   "}).encode()
        out.append((doc_id.encode(), value, kind))
    return out


def make_poison(prefix: str) -> list[tuple[bytes, bytes]]:
    """(key, value): one message of every class that ever crashed or stalled a job (see
    tests/fuzz_corpus), beyond make_bad's kinds. Each must end as exactly one dead letter."""
    cases = {
        "deep": b'{"id": "p1", "text": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "huge-int": b'{"id": "p2", "text": "t", "n": ' + b"9" * 5000 + b"}",
        "nul-id": rb'{"id": "a\u0000b", "text": "a post"}',
        "nul-title": rb'{"id": "p4", "text": "a post", "title": "a\u0000b"}',
        "surrogate": rb'{"id": "p5", "text": "lone \ud800 surrogate"}',
        "nan": b'{"id": "p6", "text": "t", "score": NaN}',
        "array": b'[{"id": "p7", "text": "t"}]',
        "null": b"null",
        "empty": b"",
        "long-id": json.dumps({"id": "i" * 300, "text": "t"}).encode(),
        "text-number": json.dumps({"id": "p11", "text": 42}).encode(),
    }
    return [(f"{prefix}-poison-{name}".encode(), value) for name, value in cases.items()]


def publish(bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes]],
            rate: float | None = None, **config: Any) -> int:
    """Send `messages`, at most `rate` per second; `config` goes to the KafkaProducer (e.g.
    compression_type)."""
    from docstream.streaming.producer import PostProducer, ProduceStats

    producer = PostProducer(bootstrap, topic, **{
        "max_block_ms": 180_000, "delivery_timeout_ms": 300_000, **config})
    stats = ProduceStats()
    t0 = time.perf_counter()
    try:
        for i, (key, value) in enumerate(messages):
            if rate:
                ahead = t0 + i / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
            producer.send(value, key)
            if (i + 1) % 500 == 0:
                producer.flush(stats)
        producer.flush(stats)
    finally:
        producer.close()
    if stats.failed:
        raise AssertionError(f"{stats.failed} message(s) failed: {stats.errors[:3]}")
    return stats.sent


class StreamJob:
    """`docstream run --source kafka://…` as a subprocess in its own process group."""

    def __init__(self, tmp: Path, bootstrap: str, topic: str, group: str, db_url: str, *,
                 model: str | None = "noop", flush_secs: float = 0.5,
                 env: dict[str, str] | None = None, extra: Sequence[str] = ()) -> None:
        self.tmp = tmp
        self.name = f"job-{uuid.uuid4().hex[:6]}"
        self.out = tmp / f"{self.name}.out"
        self.err = tmp / f"{self.name}.err"
        cmd = [sys.executable, "-m", "docstream.cli", "run",
               "--source", f"kafka://{bootstrap}/{topic}?group={group}", "--sink", db_url,
               "--flush-secs", str(flush_secs), *extra]
        if model is not None:
            cmd += ["--model", model]
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=err,
                                         env={**os.environ, **(env or {})},
                                         start_new_session=True)
        self.pgid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill_group(self) -> None:
        """kill -9 the job's whole process group (Python, Prism, SDK workers)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 120, sig: int = signal.SIGTERM, group: bool = False) -> int:
        """Signal the job (or, like a terminal's Ctrl-C, its whole process group): it drains
        and exits; returns its exit code."""
        if group:
            os.killpg(self.pgid, sig)
        else:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.reap()

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def reap(self) -> None:
        """Nothing of this job may outlive the test (an orphaned Prism, say)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=30)

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def tail(self, n: int = 4000) -> str:
        return self.output()[-n:]


def scalar(db_url: str, sql: str, **params: Any) -> Any:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()
    except Exception:  # tables not created yet
        return None
    finally:
        engine.dispose()


def rows(db_url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()


def count_results(db_url: str) -> int:
    return int(scalar(db_url, "select count(*) from classifications") or 0)


def count_dead(db_url: str) -> int:
    return int(scalar(db_url, "select count(*) from dead_letters") or 0)
