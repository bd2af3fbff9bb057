"""Kafka → PostgreSQL streaming figures: sustained docs/s, produce-to-row latency, the time to
the first row under a backlog of long articles, peak RSS of the job's process tree (Python +
Prism + SDK workers), and Prism's idle CPU.

    python bench/stream_latency.py [--model PATH|noop] [--mode first-row,throughput,latency,idle]
        [--backlog 3000] [--long-share 0.05] [--rate R] [--seconds 60] [--flush-secs 1.0]
        [--long-backlog 2000] [--long-words 400] [--poll-tokens N] [--json PATH]

Each run uses a fresh topic and a fresh PostgreSQL database (dropped afterwards) and starts
`docstream run --source kafka://…` as a subprocess in its own process group.

- throughput: `--backlog` posts are waiting before the job starts; docs/s is measured between
  10% and 90% of the rows (start-up and tail excluded).
- latency: posts are produced at a fixed `--rate` (default: half the measured throughput)
  for `--seconds`, each carrying its produce time (`metadata.produced_ms`); latency = the
  row's `processed_at` − that time. The job is started and warmed up first.
- idle: with nothing to read, the CPU used by the job's Python and Prism processes over 10 s.
- first-row: `--long-backlog` articles of at least `--long-words` words are waiting before the
  job starts; the time to the first row, from the job's own summary (`docstream run --json`:
  model_ready_s, first_result_s) and from the database as seen from outside, then the run goes
  on for `--first-row-seconds` and reports the sizes of its first write units and the steady
  docs/s. `--poll-tokens 0` shows the job without a token budget per poll.

Throughput and latency texts are short posts; `--long-share` of them are long documents of
8 posts of one label joined (as the benchmark file's, bench/data.py). Every job runs with
`--json`: each mode reports the job's own summary timings (model_load_s, first_result_s,
steady_docs_per_s) beside what is measured from outside.

Texts come from --data (the benchmark passes its own file), else AG News from the shared data
folder (read, never copied into the repo; bench/data.py finds it), else generated news posts
(tests/news_posts.py; their long_post for the long articles) with a one-line notice on stderr.
Prints a JSON document (and writes it to --json).

Long module: one benchmark script whose modes (first row, throughput, latency, idle) share
the producer, the job runner and the process-tree sampling.
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
from bench.measure import TreeSampler, process_tree  # noqa: E402
from docstream.streaming.admin import ensure_topic  # noqa: E402
from docstream.streaming.producer import PostProducer, ProduceStats  # noqa: E402

PG_ADMIN = os.environ.get("DOCSTREAM_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


DATA: Path | None = None  # --data: read texts from this JSON Lines file instead
POSTS_PER_LONG_DOC = 8  # a long document of the mix: 8 posts of one label (as bench/data.py)


def _rows() -> tuple[list[dict], bool]:
    """Rows with "text" (and "label" when known), and whether they are generated."""
    path = DATA or ag_news_path()
    if DATA is None and not path.is_file():
        rows = generated_test_split()
        print(f"[stream_latency] no AG News at {path} (set DOCSTREAM_SHARED): using "
              f"{len(rows)} generated posts from tests/news_posts.py", file=sys.stderr)
        return rows, True
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()], False


def texts(n: int, long_share: float = 0.0) -> list[str]:
    """n texts: short posts, of which `long_share` (spread evenly) are long documents of
    POSTS_PER_LONG_DOC posts of one label joined."""
    rows, _ = _rows()
    all_texts = [r["text"] for r in rows]
    random.Random(7).shuffle(all_texts)
    out = [all_texts[i % len(all_texts)] for i in range(n)]
    if long_share > 0:
        by_label = _by_label(rows)
        rng = random.Random(11)
        every = max(1, round(1 / long_share))
        for i in range(every // 2, n, every):
            label = rng.choice(sorted(by_label))
            out[i] = " ".join(rng.sample(by_label[label], POSTS_PER_LONG_DOC))
    return out


def long_texts(n: int, min_words: int) -> list[str]:
    """n articles of at least `min_words` words: AG News posts of one label joined, or the
    generated long posts of tests/news_posts.py without AG News."""
    rows, generated = _rows()
    rng = random.Random(13)
    if generated:
        from tests.news_posts import LABELS, long_post

        return [long_post(rng, LABELS[i % len(LABELS)], min_words) for i in range(n)]
    by_label = _by_label(rows)
    labels = sorted(by_label)
    out = []
    for i in range(n):
        pool = by_label[labels[i % len(labels)]]
        parts: list[str] = []
        words = 0
        while words < min_words:
            parts.append(rng.choice(pool))
            words += len(parts[-1].split())
        out.append(" ".join(parts))
    return out


def _by_label(rows: list[dict]) -> dict[str, list[str]]:
    by_label: dict[str, list[str]] = {}
    for r in rows:
        by_label.setdefault(str(r.get("label", "")), []).append(r["text"])
    return by_label


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

    def write_units(self) -> list[int]:
        """Rows per write transaction (one processed_at each), in commit order."""
        with self.engine.connect() as conn:
            return [int(n) for _, n in conn.execute(text(
                "select processed_at, count(*) from classifications group by processed_at "
                "order by processed_at")).all()]

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
               "--flush-secs", str(args.flush_secs), "--no-progress", "--json"]
        if args.model:
            cmd += ["--model", args.model]
        if args.poll_tokens is not None:
            cmd += ["--poll-tokens", str(args.poll_tokens)]
        if args.explain is not None:
            cmd += ["--explain", args.explain]
        self.log = log
        self.summary_path = log.with_suffix(".json")
        with open(log, "wb") as err, open(self.summary_path, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=err,
                                         start_new_session=True)
        self.sampler = TreeSampler(self.proc.pid, interval_s=0.5, pss=True)
        self.sampler.__enter__()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds so far of the Python process and of its Prism child."""
        out = {"python": 0.0, "prism": 0.0}
        for p in process_tree(self.proc.pid):
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

    def timings(self) -> dict[str, Any]:
        """The job's own summary timings (`docstream run --json`), once it has stopped."""
        try:
            out = self.summary_path.read_text()
            s = json.loads(out[out.index("{"):])
        except (OSError, ValueError):
            return {}
        keys = ("seconds", "inputs", "model_load_s", "model_ready_s", "first_result_s",
                "steady_docs_per_s", "write_units")
        return {k: s.get(k) for k in keys}


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
    posts = [(f"tp-{i}", t) for i, t in enumerate(texts(args.backlog, args.long_share))]
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
            "peak_rss_mb": job.sampler.peak_mb, "peak_pss_mb": job.sampler.peak_pss_mb,
            "processes": job.sampler.max_procs,
            "cpu_s": {k: round(v, 1) for k, v in cpu.items()}, "exit_code": rc,
            "long_share": args.long_share, "job": job.timings(),
        }
    finally:
        if job.proc.poll() is None:
            job.stop()
        db.drop()
        drop_topic(args.bootstrap, topic)


def first_row(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The time to the first row with `--long-backlog` long articles waiting."""
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    ensure_topic(args.bootstrap, topic, args.partitions)
    bodies = long_texts(args.long_backlog, args.long_words)
    posts = [(f"fr-{i}", t) for i, t in enumerate(bodies)]
    produce(args.bootstrap, topic, posts, None, {})
    db = Database(args.pg_admin)
    job = Job(args, topic, db.url, work / "first_row.log")
    try:
        t0 = time.time()
        samples = wait_count(db, len(posts), args.timeout, job, args.first_row_seconds)
        rc = job.stop()
        units = db.write_units()
        timings = job.timings()
        first = crossing(samples, 1)
        ready, first_s = timings.get("model_ready_s"), timings.get("first_result_s")
        return {
            "docs": len(posts), "partitions": args.partitions,
            "words_mean": round(sum(len(b.split()) for b in bodies) / len(bodies)),
            "chars_mean": round(sum(len(b) for b in bodies) / len(bodies)),
            "poll_tokens": args.poll_tokens,
            # from outside: process start (imports included) → first row seen in the database
            "first_row_after_s": round(first - t0, 1),
            # the job's own clock: its start → model loaded → first committed row
            "first_result_after_model_s": (round(first_s - ready, 2)
                                           if first_s is not None and ready is not None
                                           else None),
            "rows_written": samples[-1][1], "ran_after_first_row_s": args.first_row_seconds,
            # when the whole backlog was written (None: stopped before)
            "all_rows_after_s": (round(samples[-1][0] - t0, 1)
                                 if samples[-1][1] >= len(posts) else None),
            "first_write_units": units[:12], "write_units": len(units),
            "rows_per_unit_max": max(units) if units else None,
            "peak_rss_mb": job.sampler.peak_mb, "exit_code": rc, "job": timings,
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
        posts = [(f"lat-{i}", t) for i, t in enumerate(texts(n, args.long_share))]
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
        # the same without the first 10 s of production (the job's first polls at this rate)
        late = sorted((done[k].timestamp() - v) * 1000 for k, v in sent_at.items()
                      if k in done and v - t0 >= 10)
        idle = idle_cpu(job) if "idle" in args.modes else None
        rc = job.stop()

        def pct(p: float, xs: list[float] = lat) -> float | None:
            return round(xs[min(int(p / 100 * len(xs)), len(xs) - 1)], 1) if xs else None

        out = {
            "rate": rate, "docs": n, "received": len(lat), "long_share": args.long_share,
            "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "max_ms": round(lat[-1], 1),
            "p99_after_10s_ms": pct(99, late), "flush_secs": args.flush_secs,
            "peak_rss_mb": job.sampler.peak_mb, "peak_pss_mb": job.sampler.peak_pss_mb,
            "cpu_share": {k: round((cpu1[k] - cpu0[k]) / wall, 3) for k in cpu0},
            "exit_code": rc, "job": job.timings(),
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
                   help="comma-separated: first-row, throughput, latency, idle (idle runs after "
                   "latency)")
    p.add_argument("--backlog", type=int, default=3000, help="posts waiting (throughput)")
    p.add_argument("--stop-after", type=float, help="throughput: stop this many seconds after "
                   "the first row instead of waiting for the whole backlog")
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--long-share", type=float, default=0.0,
                   help="share of long documents (8 posts joined) among the throughput and "
                   "latency texts (default 0: short posts only)")
    p.add_argument("--long-backlog", type=int, default=2000,
                   help="first-row: long articles waiting (default 2000)")
    p.add_argument("--long-words", type=int, default=400,
                   help="first-row: words per long article at least (default 400)")
    p.add_argument("--first-row-seconds", type=float, default=20.0,
                   help="first-row: how long the run goes on after its first row (default 20)")
    p.add_argument("--poll-tokens", type=int,
                   help="passed to the job (default: the job's own; 0: no token budget)")
    p.add_argument("--explain", choices=["review", "all", "off"],
                   help="passed to the job (default: the job's own, review)")
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
    result: dict[str, Any] = {"model": args.model or "bundled", "logs": str(work),
                              "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}
    if "first-row" in args.modes:
        result["first_row"] = first_row(args, work)
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
