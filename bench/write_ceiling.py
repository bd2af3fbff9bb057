"""The store's write ceiling: result rows per second that 1 and N concurrent writers sustain
into PostgreSQL and into SQLite, through the job's own write path (StoreWriter: one
transaction per batch with its audit records, hash chain and positions), redaction off so
that the figure is the database's, not the PII policy's.

    .venv/bin/python -m bench.write_ceiling [--writers 1,2,4] [--batches 40] [--batch 200]
        [--pg URL] [--sqlite-dir DIR]

Each writer is its own process (as each streaming worker is) writing `--batches` batches of
`--batch` results with distinct keys; all start together. rows/s = all rows / the wall time
from the common start to the last commit. Starts PostgreSQL with scripts/dev-services when
--pg is not given. Every figure is for THIS machine (2 cores, PostgreSQL on the same cores).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _batch(writer_no: int, batch_no: int, size: int, run_id: str):  # type: ignore[no-untyped-def]
    from docstream.schemas.classification import Classification, ModelRef
    from docstream.schemas.envelope import ResultRecord, WriteBatch
    from docstream.schemas.position import InputPosition

    model = ModelRef(name="bench", version="1", weights_sha256="0" * 64)
    now = datetime.now(UTC)
    results = []
    for i in range(size):
        n = batch_no * size + i
        results.append(ResultRecord(
            result=Classification(doc_id=f"w{writer_no}-{n}", source="bench", label="World",
                                  score=0.9, scores={"World": 0.9, "Sports": 0.1},
                                  model=model, timings_ms={"infer": 1.0}),
            position=InputPosition(kind="file", file=f"w{writer_no}.jsonl", line=n + 1),
            input_sha256=f"{n:064x}", kind="news", title="A headline of a few words",
            created_at=now))
    return WriteBatch(run_id=run_id, results=results)


def _writer(url: str, writer_no: int, batches: int, size: int, start: mp.Event,
            done: mp.Queue) -> None:
    from docstream.privacy.redact import IdentityRedactor
    from docstream.store.engine import make_engine
    from docstream.store.writer import StoreWriter

    engine = make_engine(url)
    writer = StoreWriter(engine, redactor=IdentityRedactor())
    run_id = f"ceiling-{uuid.uuid4().hex[:8]}"
    work = [_batch(writer_no, b, size, run_id) for b in range(batches)]  # built before the clock
    start.wait()
    for batch in work:
        writer.write(batch)
    done.put(time.perf_counter())
    engine.dispose()


def measure(url: str, writers: int, batches: int, size: int) -> float:
    ctx = mp.get_context("spawn")
    start, done = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, w, batches, size, start, done))
             for w in range(writers)]
    for p in procs:
        p.start()
    time.sleep(8.0)  # every writer has imported and built its batches
    t0 = time.perf_counter()
    start.set()
    ends = [done.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    return writers * batches * size / (max(ends) - t0)


def fresh_pg(admin: str) -> str:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from docstream.store.engine import make_engine

    name = f"ceiling_{uuid.uuid4().hex[:8]}"
    engine = make_engine(admin)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writers", default="1,2,4")
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--pg", default=None, help="an admin URL (default: dev-services' server)")
    ap.add_argument("--sqlite-dir", default=None)
    args = ap.parse_args()
    from docstream.store.engine import make_engine
    from docstream.store.migrate import upgrade

    if args.pg is None:
        subprocess.run([str(REPO / "scripts" / "dev-services"), "start", "postgres"], check=True,
                       stdout=subprocess.DEVNULL)
    admin = args.pg or PG_ADMIN
    counts = [int(n) for n in args.writers.split(",")]
    print(f"{'store':<11} {'writers':>7} {'rows/s':>10}  (batches of {args.batch}, "
          f"{args.batches} per writer)")
    with tempfile.TemporaryDirectory(dir=args.sqlite_dir) as tmp:
        for kind in ("postgresql", "sqlite"):
            for n in counts:
                url = fresh_pg(admin) if kind == "postgresql" else \
                    f"sqlite:///{Path(tmp) / f'ceiling-{n}.db'}"
                upgrade(make_engine(url))
                rate = measure(url, n, args.batches, args.batch)
                print(f"{kind:<11} {n:>7} {rate:>10,.0f}", flush=True)


if __name__ == "__main__":
    main()
