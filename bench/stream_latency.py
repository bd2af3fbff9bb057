"""Kafka → PostgreSQL streaming figures: sustained docs/s, produce-to-row latency, peak RSS of
the job's process tree (Python + Prism + SDK workers), and Prism's idle CPU.

    python bench/stream_latency.py [--model PATH|noop] [--mode throughput,latency,idle]
        [--backlog 3000] [--rate R] [--seconds 60] [--flush-secs 1.0] [--json PATH]

Each run uses a fresh topic and a fresh PostgreSQL database (dropped afterwards) and starts
`docstream run --source kafka://…` as a subprocess in its own process group.

- throughput: `--backlog` posts are waiting before the job starts; docs/s is measured between
  10% and 90% of the rows (start-up and tail excluded).
- latency: posts are produced at a fixed `--rate` (default: half the measured throughput)
  for `--seconds`, each carrying its produce time (`metadata.produced_ms`); latency = the
  row's `processed_at` − that time. The job is started and warmed up first.
- idle: with nothing to read, the CPU used by the job's Python and Prism processes over 10 s.

Texts come from --data (the benchmark passes its own file), else AG News from the shared data
folder (read, never copied into the repo; bench/data.py finds it), else generated news posts
(tests/news_posts.py) with a one-line notice on stderr.
Prints a JSON document (and writes it to --json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.data import ag_news_path, generated_test_split  # noqa: E402 - after sys.path set-up
from bench.measure import TreeSampler  # noqa: E402
from docstream.streaming.admin import ensure_topic  # noqa: E402
from docstream.streaming.producer import PostProducer, ProduceStats  # noqa: E402

PG_ADMIN = os.environ.get("DOCSTREAM_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


DATA: Path | None = None  # --data: read texts from this JSON Lines file instead


def texts(n: int) -> list[str]:
    path = DATA or ag_news_path()
    if DATA is None and not path.is_file():
        all_texts = [r["text"] for r in generated_test_split()]
        print(f"[stream_latency] no AG News at {path} (set DOCSTREAM_SHARED): using "
              f"{len(all_texts)} generated posts from tests/news_posts.py", file=sys.stderr)
    else:
        with open(path, encoding="utf-8") as f:
            all_texts = [json.loads(line)["text"] for line in f if line.strip()]
    random.Random(7).shuffle(all_texts)
    return [all_texts[i % len(all_texts)] for i in range(n)]


class Database:
    """A fresh PostgreSQL database for one measurement."""

    def __init__(self, admin_url: str) -> None:
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.name = f"bench_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = admin_url.rsplit("/", 1)[0] + f"/{self.name}"
        self.engine = create_engine(self.url)

    def count(self) -> int:
        try:
            with self.engine.connect() as conn:
                return int(conn.execute(text("select count(*) from audit_log")).scalar() or 0)
        except Exception:  # tables not created yet
            return 0

    def processed_at(self) -> dict[str, datetime]:
        with self.engine.connect() as conn:
            return dict(conn.execute(text("select id, processed_at from classifications")).all())

    def drop(self) -> None:
        self.engine.dispose()
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


class Job:
    """The streaming job in its own process group, with its tree's RSS sampled."""

    def __init__(self, args: argparse.Namespace, topic: str, db_url: str, log: Path) -> None:
        cmd = [sys.executable, "-m", "docstream.cli", "run", "--source",
               f"kafka://{args.bootstrap}/{topic}?group=bench", "--sink", db_url,
               "--flush-secs", str(args.flush_secs), "--no-progress"]
        if args.model:
            cmd += ["--model", args.model]
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.sampler = TreeSampler(self.proc.pid, interval_s=0.5)
        self.sampler.__enter__()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds so far of the Python process and of its Prism child."""
        out = {"python": 0.0, "prism": 0.0}
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return out
        for p in procs:
            try:
                t = p.cpu_times()
                kind = "prism" if "prism" in p.name() else "python"
                out[kind] += t.user + t.system
            except psutil.Error:
                continue
        return out

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            rc = -9
        self.sampler.stop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # nothing may outlive the run
        return rc


def produce(bootstrap: str, topic: str, posts: list[tuple[str, str]], rate: float | None,
            sent_at: dict[str, float]) -> None:
    producer = PostProducer(bootstrap, topic, linger_ms=0)
    stats = ProduceStats()
    t0 = time.time()
    try:
        for i, (doc_id, body) in enumerate(posts):
            if rate:
                ahead = t0 + i / rate - time.time()
                if ahead > 0:
                    time.sleep(ahead)
            now = time.time()
            sent_at[doc_id] = now
            value = json.dumps({"id": doc_id, "text": body, "kind": "news", "source": "bench",
                                "metadata": {"produced_ms": int(now * 1000)}}).encode()
            producer.send(value, doc_id.encode())
            if (i + 1) % 1000 == 0:
                producer.flush(stats)
        producer.flush(stats)
    finally:
        producer.close()


def drop_topic(bootstrap: str, topic: str) -> None:
    """Remove the run's topic and its dead-letter topic (best effort)."""
    from kafka.admin import KafkaAdminClient

    with contextlib.suppress(Exception):
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            doomed = [t for t in (topic, f"{topic}.dlq") if t in set(admin.list_topics())]
            if doomed:
                admin.delete_topics(doomed)
        finally:
            admin.close()


def wait_count(db: Database, n: int, timeout: float, job: Job,
               stop_after: float | None = None) -> list[tuple[float, int]]:
    """Poll the row count until n (or `stop_after` s after the first row); returns
    (time, count) samples."""
    samples = []
    deadline = time.time() + timeout
    first: float | None = None
    while time.time() < deadline:
        c = db.count()
        samples.append((time.time(), c))
        if c >= n:
            return samples
        if c and first is None:
            first = time.time()
        if stop_after and first and time.time() - first >= stop_after:
            return samples
        if job.proc.poll() is not None:
            raise RuntimeError(f"the job exited ({job.proc.returncode}); see {job.log}")
        time.sleep(0.25)
    raise RuntimeError(f"timed out waiting for {n} rows (have {samples[-1][1]}); see {job.log}")


def crossing(samples: list[tuple[float, int]], n: float) -> float:
    for t, c in samples:
        if c >= n:
            return t
    return samples[-1][0]


def throughput(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    ensure_topic(args.bootstrap, topic, args.partitions)
    posts = [(f"tp-{i}", t) for i, t in enumerate(texts(args.backlog))]
    produce(args.bootstrap, topic, posts, None, {})
    db = Database(args.pg_admin)
    job = Job(args, topic, db.url, work / "throughput.log")
    try:
        t0 = time.time()
        samples = wait_count(db, args.backlog, args.timeout, job, args.stop_after)
        cpu = job.cpu_seconds()
        done = samples[-1][1]
        lo_n, hi_n = 0.1 * done, 0.9 * done
        lo, hi = crossing(samples, lo_n), crossing(samples, hi_n)
        rc = job.stop()
        first = crossing(samples, 1)
        return {
            "docs": args.backlog, "written": done, "partitions": args.partitions,
            # below ~2 s between the 10% and 90% rows the 0.25 s sampling decides the figure
            "docs_s": round((hi_n - lo_n) / (hi - lo), 1) if hi - lo >= 2.0 else None,
            "first_row_after_s": round(first - t0, 1),
            "last_row_after_s": round(samples[-1][0] - t0, 1),
            "peak_rss_mb": job.sampler.peak_mb, "processes": job.sampler.max_procs,
            "cpu_s": {k: round(v, 1) for k, v in cpu.items()}, "exit_code": rc,
        }
    finally:
        if job.proc.poll() is None:
            job.stop()
        db.drop()
        drop_topic(args.bootstrap, topic)


def latency(args: argparse.Namespace, work: Path, rate: float) -> dict[str, Any]:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    ensure_topic(args.bootstrap, topic, args.partitions)
    db = Database(args.pg_admin)
    job = Job(args, topic, db.url, work / "latency.log")
    try:
        warm = [(f"warm-{i}", t) for i, t in enumerate(texts(20))]
        produce(args.bootstrap, topic, warm, None, {})
        wait_count(db, len(warm), args.timeout, job)  # started, model loaded
        n = int(rate * args.seconds)
        posts = [(f"lat-{i}", t) for i, t in enumerate(texts(n))]
        sent_at: dict[str, float] = {}
        producer = threading.Thread(target=produce,
                                    args=(args.bootstrap, topic, posts, rate, sent_at))
        cpu0 = job.cpu_seconds()
        t0 = time.time()
        producer.start()
        producer.join()
        wait_count(db, len(warm) + n, args.timeout, job)
        wall = time.time() - t0
        cpu1 = job.cpu_seconds()
        done = db.processed_at()
        lat = sorted((done[k].timestamp() - v) * 1000 for k, v in sent_at.items() if k in done)
        idle = idle_cpu(job) if "idle" in args.modes else None
        rc = job.stop()

        def pct(p: float) -> float:
            return round(lat[min(int(p / 100 * len(lat)), len(lat) - 1)], 1)

        out = {
            "rate": rate, "docs": n, "received": len(lat), "p50_ms": pct(50), "p90_ms": pct(90),
            "p99_ms": pct(99), "max_ms": round(lat[-1], 1), "flush_secs": args.flush_secs,
            "peak_rss_mb": job.sampler.peak_mb,
            "cpu_share": {k: round((cpu1[k] - cpu0[k]) / wall, 3) for k in cpu0},
            "exit_code": rc,
        }
        if idle is not None:
            out["idle"] = idle
        return out
    finally:
        if job.proc.poll() is None:
            job.stop()
        db.drop()
        drop_topic(args.bootstrap, topic)


def idle_cpu(job: Job, seconds: float = 10.0) -> dict[str, float]:
    """Share of one core used by the job's Python and Prism processes with nothing to read."""
    time.sleep(3)  # let the last batches settle
    a = job.cpu_seconds()
    time.sleep(seconds)
    b = job.cpu_seconds()
    return {k: round((b[k] - a[k]) / seconds, 3) for k in a}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", default=os.environ.get("DOCSTREAM_KAFKA", "127.0.0.1:9092"))
    p.add_argument("--pg-admin", default=PG_ADMIN, help="PostgreSQL URL of an admin database")
    p.add_argument("--model", help="PATH or noop (default: the bundled model)")
    p.add_argument("--mode", default="throughput,latency,idle",
                   help="comma-separated: throughput, latency, idle (idle runs after latency)")
    p.add_argument("--backlog", type=int, default=3000, help="posts waiting (throughput)")
    p.add_argument("--stop-after", type=float, help="throughput: stop this many seconds after "
                   "the first row instead of waiting for the whole backlog")
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--rate", type=float, help="posts/s (latency; default half the throughput)")
    p.add_argument("--seconds", type=float, default=60.0, help="latency run length")
    p.add_argument("--flush-secs", type=float, default=1.0)
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--json", type=Path)
    p.add_argument("--data", type=Path, help="JSON Lines file to take texts from (default: the "
                   "shared AG News file, else generated posts); the benchmark passes its own file, "
                   "long docs included")
    args = p.parse_args(argv)
    global DATA
    DATA = args.data
    args.modes = {m.strip() for m in args.mode.split(",") if m.strip()}
    # a SIGTERM (e.g. from a timeout) must still stop the job we started: unwind via finally
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"stream-bench-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    result: dict[str, Any] = {"model": args.model or "bundled", "logs": str(work)}
    if "throughput" in args.modes:
        result["throughput"] = throughput(args, work)
    if "latency" in args.modes:
        rate = args.rate or ((result.get("throughput", {}).get("docs_s") or 300) / 2)
        result["latency"] = latency(args, work, round(rate, 1))
    doc = json.dumps(result, indent=2)
    print(doc)
    if args.json:
        args.json.write_text(doc + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
