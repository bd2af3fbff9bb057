"""Scale-out of the streaming job: docs/s of 1, 2 and 3 workers of one consumer group that
share a topic's partitions (no-op model, real broker, real PostgreSQL), and what the
coordination costs.

    .venv/bin/python -m bench.scale_out [--workers 1,2,3] [--backlog 12000] [--partitions 6]
        [--json out.json]

For each worker count: a fresh topic with `--backlog` generated posts waiting, a fresh
database, N `docstream run --model noop --worker wI` processes started together. Reported:
docs/s between the 10% and 90% rows (steady), docs/s from the start to the last row (with
start-up: Python, Prism, joining the group), the time until every worker had planned, and the
CPU seconds of all worker process trees per 1,000 docs, between the 10% and 90% rows (steady)
and in all. On this 2-core machine the CPU is the limit, so more workers cannot add much speed:
the figure to read is the steady CPU per 1,000 docs, whose growth with N is the coordination
overhead (one more Python, Prism and group member each, and smaller batches per worker).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from bench.measure import process_tree
from bench.stream_latency import PG_ADMIN, REPO, Database, crossing, drop_topic, produce, texts
from docstream.streaming.admin import ensure_topic


class Worker:
    """One `docstream run` worker of the group, in its own process group."""

    def __init__(self, bootstrap: str, topic: str, group: str, db_url: str, name: str,
                 log: Path) -> None:
        cmd = [sys.executable, "-m", "docstream.cli", "run", "--source",
               f"kafka://{bootstrap}/{topic}?group={group}", "--sink", db_url, "--model",
               "noop", "--worker", name, "--explain", "off", "--flush-secs", "0.5"]
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def planned(self) -> bool:
        text = self.log.read_text(errors="replace")
        return "(plan " in text or "owns no partition" in text

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in process_tree(self.proc.pid):
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                continue
        return total

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=120)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def measure(args: argparse.Namespace, n: int, work: Path) -> dict[str, Any]:
    topic = f"scale-{uuid.uuid4().hex[:8]}"
    ensure_topic(args.bootstrap, topic, args.partitions)
    produce(args.bootstrap, topic, [(f"s-{i}", t) for i, t in enumerate(texts(args.backlog))],
            None, {})
    db = Database(args.pg_admin)
    workers: list[Worker] = []
    try:
        t0 = time.time()
        workers = [Worker(args.bootstrap, topic, "scale", db.url, f"w{i + 1}",
                          work / f"n{n}-w{i + 1}.log") for i in range(n)]
        planned_at = None
        samples: list[tuple[float, int]] = []
        cpu_at: list[float] = []  # all workers' CPU seconds at each sample
        deadline = t0 + args.timeout
        while time.time() < deadline:
            if planned_at is None and all(w.planned() for w in workers):
                planned_at = time.time()
            c = db.count()
            samples.append((time.time(), c))
            cpu_at.append(sum(w.cpu_seconds() for w in workers))
            if c >= args.backlog:
                break
            dead = [w for w in workers if w.proc.poll() is not None]
            if dead:
                raise RuntimeError(f"a worker exited ({dead[0].proc.returncode}); see "
                                   f"{dead[0].log}")
            time.sleep(0.25)
        else:
            raise RuntimeError(f"timed out with {samples[-1][1]} of {args.backlog} rows")
        cpu = cpu_at[-1]
        done = samples[-1][1]
        lo, hi = crossing(samples, 0.1 * done), crossing(samples, 0.9 * done)
        times = [t for t, _ in samples]
        steady_cpu = cpu_at[times.index(hi)] - cpu_at[times.index(lo)]
        first = crossing(samples, 1)
        per_worker = db_rows_per_worker(db)
        return {
            "workers": n, "docs": done, "partitions": args.partitions,
            "steady_docs_s": round(0.8 * done / (hi - lo), 1) if hi > lo else None,
            "with_startup_docs_s": round(done / (samples[-1][0] - t0), 1),
            "first_row_after_s": round(first - t0, 1),
            "all_planned_after_s": round(planned_at - t0, 1) if planned_at else None,
            "cpu_s": round(cpu, 1), "cpu_s_per_1000": round(1000 * cpu / done, 2),
            # CPU of the workers per 1,000 docs between the 10% and 90% rows: the steady cost,
            # without each worker's start-up (imports, Prism, the model)
            "steady_cpu_s_per_1000": round(1000 * steady_cpu / (0.8 * done), 2),
            "rows_per_worker": per_worker,
        }
    finally:
        for w in workers:
            w.stop()
        db.drop()
        drop_topic(args.bootstrap, topic)


def db_rows_per_worker(db: Database) -> dict[str, int]:
    from sqlalchemy import text

    with db.engine.connect() as conn:
        return {r: int(c) for r, c in conn.execute(text(
            "select run_id, count(*) from audit_log group by run_id order by run_id")).all()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", default=os.environ.get("DOCSTREAM_KAFKA", "127.0.0.1:9092"))
    p.add_argument("--pg-admin", default=PG_ADMIN)
    p.add_argument("--workers", default="1,2,3")
    p.add_argument("--backlog", type=int, default=12000)
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="scale-out-") as tmp:
        for n in (int(x) for x in args.workers.split(",")):
            r = measure(args, n, Path(tmp))
            results.append(r)
            print(json.dumps(r), flush=True)
    base = results[0]
    print(f"\n{'workers':>7} {'steady docs/s':>13} {'with start-up':>13} {'planned at':>10} "
          f"{'CPU s/1000 steady':>17} {'overhead':>8} {'CPU s/1000 all':>14}")
    for r in results:
        overhead = r["steady_cpu_s_per_1000"] / base["steady_cpu_s_per_1000"] - 1
        print(f"{r['workers']:>7} {r['steady_docs_s'] or float('nan'):>13,.1f} "
              f"{r['with_startup_docs_s']:>13,.1f} {r['all_planned_after_s'] or 0:>9.1f}s "
              f"{r['steady_cpu_s_per_1000']:>17.2f} {overhead:>+8.0%} "
              f"{r['cpu_s_per_1000']:>14.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
