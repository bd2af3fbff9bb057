"""docstream_batch_sqlite / _postgres / pipeline_overhead: `docstream run` end to end.

`docstream run --source F --sink URL --model M --no-progress --json` runs in a child process
of this row; docs/s is the summary's inputs over the summary's seconds (the Beam pipeline,
model loading included), and `total_wall_s` adds interpreter start-up, migrations and the
summary queries. `job_peak_rss_mb` is the peak RSS of the docstream process tree alone.
pipeline_overhead is the same run with `--model noop` (a fixed-label model that computes
nothing): the rate the Beam stages allow around an infinitely fast model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench.data import REPO, read_docs
from bench.measure import TreeSampler, kill_tree

PG_HOST = os.environ.get("DOCSTREAM_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("DOCSTREAM_PG_PORT", "5432")
PG_ADMIN_URL = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/postgres"
TIMEOUT_S = 3600


def run_docstream(data: Path, sink: str, model: str, timeout_s: float = TIMEOUT_S) -> dict:
    cmd = [sys.executable, "-m", "docstream.cli", "run", "--source", str(data), "--sink", sink,
           "--model", model, "--no-progress", "--json"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    with TreeSampler(proc.pid) as sampler:
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            proc.communicate()
            raise RuntimeError(f"docstream run took longer than {timeout_s} s") from None
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"docstream run exited {proc.returncode}: {err[-2000:]}")
    summary = json.loads(out[out.index("{"):])
    n = len(read_docs(data))
    if summary["inputs"] != n:
        raise RuntimeError(f"docstream run processed {summary['inputs']} of {n} inputs")
    return {
        "docs_s": round(summary["inputs"] / summary["seconds"], 1),
        "pipeline_s": summary["seconds"],
        "total_wall_s": round(wall, 3),
        "docs_s_incl_startup": round(summary["inputs"] / wall, 1),
        "job_peak_rss_mb": sampler.peak_mb,
        "job_processes": sampler.max_procs,
        "summary": summary,
    }


def write_timeline(url: str, run_id: str) -> dict:
    """When the run's rows landed: time to the first write, and the steady rate between the
    first and the last write (start-up and model loading excluded), from the audit log."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            started = conn.execute(text("SELECT started_at FROM runs WHERE run_id = :r"),
                                   {"r": run_id}).scalar_one()
            groups = conn.execute(text(
                "SELECT recorded_at, count(*) FROM audit_log WHERE run_id = :r "
                "GROUP BY recorded_at ORDER BY recorded_at"), {"r": run_id}).all()
    finally:
        engine.dispose()
    if not groups:
        return {}
    times = [_as_datetime(t) for t, _n in groups]
    out = {"write_batches": len(groups),
           "first_write_after_s": round((times[0] - _as_datetime(started)).total_seconds(), 3)}
    span = (times[-1] - times[0]).total_seconds()
    if len(groups) > 1 and span > 0:
        out["steady_docs_s"] = round(sum(n for _t, n in groups[1:]) / span, 1)
    return out


def _as_datetime(value):
    from datetime import UTC, datetime

    if isinstance(value, str):  # SQLite returns text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run_sqlite(args) -> dict:
    db = Path(args.work) / f"bench-{uuid.uuid4().hex[:8]}.db"
    try:
        result = run_docstream(args.data, f"sqlite:///{db}", str(args.model))
        result.update(write_timeline(f"sqlite:///{db}", result["summary"]["run_id"]))
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    result["sink"] = "sqlite (WAL)"
    return result


def run_noop(args) -> dict:
    db = Path(args.work) / f"bench-noop-{uuid.uuid4().hex[:8]}.db"
    try:
        result = run_docstream(args.data, f"sqlite:///{db}", "noop")
        result.update(write_timeline(f"sqlite:///{db}", result["summary"]["run_id"]))
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    result["sink"] = "sqlite (WAL)"
    result["model"] = "noop (fixed label)"
    return result


def start_postgres() -> None:
    proc = subprocess.run([str(REPO / "scripts" / "dev-services"), "start", "postgres"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/dev-services start postgres failed: {proc.stderr[-2000:]}")


def run_postgres(args) -> dict:
    from sqlalchemy import create_engine, text

    start_postgres()
    name = f"docstream_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
        result = run_docstream(args.data, url, str(args.model))
        result.update(write_timeline(url, result["summary"]["run_id"]))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    result["sink"] = "postgresql (dev-services, fresh database)"
    return result
