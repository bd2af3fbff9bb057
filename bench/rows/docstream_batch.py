"""docstream_batch_sqlite / _postgres / pipeline_overhead: `docstream run` end to end.

`docstream run --source F --sink URL --model M --no-progress --json` runs in a child process
of this row, with every default of `docstream run` as it is (no flag but the source, sink,
model and output format: the PII policy, --store-text review, --explain review, the input
checks and the audit hash chain all on; DEFAULTS). Three rates per run:

- `steady_docs_s`: once writing, between the first and the last store write (audit log
  timestamps): start-up and model loading excluded;
- `docs_s_incl_startup`: from the process launch (interpreter start, imports, migrations,
  model loading) to the last store write;
- `docs_s`: the summary's inputs over the summary's seconds (the Beam pipeline, model loading
  included); `total_wall_s` is launch to exit, which adds the summary queries and the
  explanation backlog drained after the last write (`after_last_write_s`).

`job_peak_rss_mb` is the peak RSS of the docstream process tree alone (the explanation worker
included). pipeline_overhead is the same run with `--model noop` (a fixed-label model that
computes nothing): the rate the Beam stages allow around an infinitely fast model; its input is
the benchmark file repeated (new ids) to at least NOOP_MIN_DOCS documents so that the writes
span long enough for a steady rate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench.data import REPO, read_docs
from bench.measure import TreeSampler, kill_tree

PG_HOST = os.environ.get("DOCSTREAM_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("DOCSTREAM_PG_PORT", "5432")
PG_ADMIN_URL = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/postgres"
TIMEOUT_S = 3600
#: pipeline_overhead's input at least: at ~5,000 docs/s fewer docs write within a second
NOOP_MIN_DOCS = 20_000
#: What the rows leave at `docstream run`'s defaults, stated in the table. The bench passes
#: no flag that changes them; `defaults_seen` checks them in the run's own records.
DEFAULTS = {"pii_policy": "default", "store_text": "review", "explain": "review",
            "entities": False}

def run_docstream(data: Path, sink: str, model: str, timeout_s: float = TIMEOUT_S) -> dict:
    cmd = [sys.executable, "-m", "docstream.cli", "run", "--source", str(data), "--sink", sink,
           "--model", model, "--no-progress", "--json"]
    launched = datetime.now(UTC)  # the writer's clock (audit recorded_at)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    with TreeSampler(proc.pid, pss=True) as sampler:
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
        "docs_s_wall": round(summary["inputs"] / wall, 1),
        "launched_at": launched.isoformat(),
        "job_peak_rss_mb": sampler.peak_mb,
        "job_peak_pss_mb": sampler.peak_pss_mb,
        "job_processes": sampler.max_procs,
        "summary": summary,
    }


def write_rates(groups: list[tuple[datetime, int]], started: datetime,
                launched: datetime | None = None) -> dict:
    """Rates from the run's write times: `groups` is (recorded_at, rows) per write, in order;
    `started` the run's start in the store (after imports and migrations), `launched` the
    process launch. The steady rate counts the rows written after the first write over the
    time from the first to the last write; the rate with start-up counts every row over the
    time from the launch to the last write."""
    if not groups:
        return {}
    times = [t for t, _n in groups]
    n = sum(c for _t, c in groups)
    out: dict = {"write_batches": len(groups),
                 "first_write_after_s": round((times[0] - started).total_seconds(), 3),
                 "last_write_after_s": round((times[-1] - started).total_seconds(), 3)}
    span = (times[-1] - times[0]).total_seconds()
    out["steady_span_s"] = round(span, 3)
    if len(groups) > 1 and span > 0:
        out["steady_docs_s"] = round(sum(c for _t, c in groups[1:]) / span, 1)
    if launched is not None:
        to_last = (times[-1] - launched).total_seconds()
        out["last_write_after_launch_s"] = round(to_last, 3)
        if to_last > 0:
            out["docs_s_incl_startup"] = round(n / to_last, 1)
    return out


def write_timeline(url: str, run_id: str, launched: datetime | None = None) -> dict:
    """When the run's rows landed (audit log): write_rates, and what the run's own records
    say of the defaults (the PII policy each audit record names, the texts kept)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            started = conn.execute(text("SELECT started_at FROM runs WHERE run_id = :r"),
                                   {"r": run_id}).scalar_one()
            groups = conn.execute(text(
                "SELECT recorded_at, count(*) FROM audit_log WHERE run_id = :r "
                "GROUP BY recorded_at ORDER BY recorded_at"), {"r": run_id}).all()
            policies = conn.execute(text(
                "SELECT DISTINCT pii_policy FROM audit_log WHERE run_id = :r"),
                {"r": run_id}).scalars().all()
            kept = conn.execute(text(
                "SELECT count(text), count(*) FROM classifications WHERE run_id = :r"),
                {"r": run_id}).one()
    finally:
        engine.dispose()
    out = write_rates([(_as_datetime(t), int(c)) for t, c in groups], _as_datetime(started),
                      launched)
    out["audit_pii_policies"] = sorted(str(p) for p in policies)
    out["texts_kept"] = int(kept[0])
    return out


def defaults_seen(result: dict) -> dict:
    """The defaults the run ran with, as its own records show them."""
    summary = result.get("summary", {})
    ex = summary.get("explanations") or {}
    return {**DEFAULTS, "audit_pii_policies": result.get("audit_pii_policies"),
            "texts_kept": result.get("texts_kept"), "needs_review": summary.get("needs_review"),
            "explanations": {k: ex.get(k) for k in ("submitted", "explained", "skipped")},
            "flags": "--source --sink --model --no-progress --json only"}


def _as_datetime(value):
    if isinstance(value, str):  # SQLite returns text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def finish(result: dict, url: str) -> dict:
    """Add the write timeline, the time after the last write and the defaults seen."""
    launched = datetime.fromisoformat(result["launched_at"])
    result.update(write_timeline(url, result["summary"]["run_id"], launched))
    if result.get("last_write_after_launch_s") is not None:
        result["after_last_write_s"] = round(
            result["total_wall_s"] - result["last_write_after_launch_s"], 3)
    result["defaults"] = defaults_seen(result)
    return result


def run_sqlite(args) -> dict:
    db = Path(args.work) / f"bench-{uuid.uuid4().hex[:8]}.db"
    try:
        result = finish(run_docstream(args.data, f"sqlite:///{db}", str(args.model)),
                        f"sqlite:///{db}")
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    result["sink"] = "sqlite (WAL)"
    return result


def repeated(data: Path, out: Path, min_docs: int) -> int:
    """Write `data` repeated (ids made unique) until it holds at least `min_docs` docs."""
    docs = read_docs(data)
    reps = max(1, -(-min_docs // len(docs)))
    with out.open("w", encoding="utf-8") as f:
        for k in range(reps):
            for d in docs:
                f.write(json.dumps({**d, "id": f"{d['id']}-r{k}" if k else d["id"]},
                                   ensure_ascii=False) + "\n")
    return reps * len(docs)


def run_noop(args) -> dict:
    tag = uuid.uuid4().hex[:8]
    db = Path(args.work) / f"bench-noop-{tag}.db"
    data = Path(args.data)
    n = len(read_docs(data))
    if not args.quick and n < NOOP_MIN_DOCS:
        data = Path(args.work) / f"bench-noop-{tag}.jsonl"
        n = repeated(Path(args.data), data, NOOP_MIN_DOCS)
    try:
        result = finish(run_docstream(data, f"sqlite:///{db}", "noop"), f"sqlite:///{db}")
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        if data != Path(args.data):
            data.unlink(missing_ok=True)
    result["sink"] = "sqlite (WAL)"
    result["model"] = "noop (fixed label)"
    result["n_docs"] = n
    result["repeated_input"] = data != Path(args.data)
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
        result = finish(run_docstream(args.data, url, str(args.model)), url)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    result["sink"] = "postgresql (dev-services, fresh database)"
    return result
