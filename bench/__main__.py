"""`python -m bench [--quick] [--json PATH] [--limit N] [--rows a,b] [--skip a,b]`.

Writes the benchmark input once, runs every row in its own subprocess (measuring wall time
and the peak RSS of the row's process tree), prints the table with the target ratios and
optionally writes the JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.data import REPO, write_data
from bench.measure import foreign_cpu, run_measured, training_running
from bench.report import ratios, table
from bench.rows import ROWS

QUICK_DOCS = 400


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help=f"a {QUICK_DOCS}-doc sample (CI smoke run; asserts nothing about speed)")
    p.add_argument("--limit", type=int, help="number of docs (default: all 8,000, quick: 400)")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON here")
    p.add_argument("--rows", help=f"comma-separated rows to run (default all: {', '.join(ROWS)})")
    p.add_argument("--skip", help="comma-separated rows to leave out")
    p.add_argument("--row-timeout", type=float, help="seconds per row (default 600, quick 300)")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch folder")
    p.add_argument("--render", type=Path, metavar="JSON",
                   help="print the table of an earlier run's JSON and exit")
    return p.parse_args(argv)


def pick_rows(args: argparse.Namespace) -> list[str]:
    rows = list(ROWS)
    if args.rows:
        rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    skip = {r.strip() for r in (args.skip or "").split(",") if r.strip()}
    unknown = [r for r in [*rows, *skip] if r not in ROWS]
    if unknown:
        raise SystemExit(f"unknown row(s): {', '.join(unknown)}; rows are {', '.join(ROWS)}")
    return [r for r in rows if r not in skip]


def contention_note() -> str:
    """Other work on the CPU now: training jobs and busy processes outside this benchmark."""
    pids = training_running()
    parts = []
    if pids:
        parts.append(f"docstream train running (pids {', '.join(map(str, pids))})")
    busy = foreign_cpu(1.0, exclude=set(pids))
    if sum(pct for _name, pct in busy) >= 50:
        parts.append("busy: " + ", ".join(f"{name} {pct}%" for name, pct in busy[:3]))
    return "; ".join(parts)


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def row_cmd(row: str, data: Path, out: Path, work: Path, model: str | None, kind: str,
            quick: bool) -> list[str]:
    cmd = [sys.executable, "-m", "bench.rows", row, "--data", str(data), "--out", str(out),
           "--work", str(work), "--model-kind", kind]
    if model:
        cmd += ["--model", model]
    if quick:
        cmd.append("--quick")
    return cmd


def run_row(cmd: list[str], out: Path, timeout_s: float, env: dict[str, str]) -> dict:
    m = run_measured(cmd, timeout_s=timeout_s, cwd=str(REPO), env=env)
    try:
        result = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        result = {"status": "failed",
                  "error": f"timed out after {timeout_s:.0f} s" if m.timed_out
                  else f"exit {m.rc}: {m.stderr.strip()[-800:]}"}
    if result.get("status") == "failed" and m.stderr.strip():
        result["stderr_tail"] = m.stderr.strip()[-1500:]
    result["peak_rss_mb"] = m.peak_rss_mb
    result["wall_s"] = round(m.wall_s, 2)
    result["foreign_cores"] = m.foreign_cores
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        doc = json.loads(args.render.read_text(encoding="utf-8"))
        doc["ratios"] = ratios(doc["results"], doc["results"].get("accuracy"))
        print(table(doc))
        return 0
    rows = pick_rows(args)
    limit = args.limit or (QUICK_DOCS if args.quick else None)
    timeout_s = args.row_timeout or (300.0 if args.quick else 1800.0)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    contention_start = contention_note()
    work = Path(tempfile.mkdtemp(prefix="docstream-bench-"))
    t_all = time.perf_counter()
    try:
        try:
            data = write_data(work, limit, allow_generated=args.quick)
        except FileNotFoundError as e:  # the full benchmark needs AG News from ../shared
            log(f"{e} (a --quick run falls back to generated posts)")
            return 2
        if data.notice:
            log(data.notice)
        log(f"data: {data.n_docs} docs ({data.n_long} long) in {data.path}")
        prep = run_row(row_cmd("prepare", data.path, work / "prepare.json", work, None, "", False),
                       work / "prepare.json", timeout_s, env)
        if prep.get("status") != "ok":
            log(f"set-up failed: {prep.get('error')}\n{prep.get('stderr_tail', '')}")
            return 2
        model_dir, kind = prep["model_dir"], prep["model_kind"]
        log(f"model: {model_dir} ({kind})")
        results: dict[str, dict] = {}
        for row in rows:
            log(f"row {row} ...")
            out = work / f"{row}.json"
            results[row] = run_row(row_cmd(row, data.path, out, work, model_dir, kind, args.quick),
                                   out, timeout_s, env)
            r = results[row]
            log(f"row {row}: {r.get('status')} docs/s={r.get('docs_s')} "
                f"steady={r.get('steady_docs_s')} with_startup={r.get('docs_s_incl_startup')} "
                f"peak_rss_mb={r['peak_rss_mb']} wall_s={r['wall_s']} "
                f"other_cores={r.get('foreign_cores')}"
                + (f" error={r.get('error')}" if r.get("status") == "failed" else ""))
        contention_end = contention_note()
        doc = {
            "machine": prep["machine"],
            "data": {"n_docs": data.n_docs, "n_short": data.n_short, "n_long": data.n_long,
                     "source": data.source},
            "quick": bool(args.quick),
            "contention": {"start": contention_start or None, "end": contention_end or None},
            "results": results,
            "ratios": ratios(results, results.get("accuracy")),
            "accuracy": {k: v for k, v in results.get("accuracy", {}).items() if k in (
                "modes", "n_posts", "model_kind", "eligible_as_default", "docstream_default_mode",
                "docstream_default_ok", "meaningful", "skipped", "status")},
            "total_s": round(time.perf_counter() - t_all, 1),
        }
        print(table(doc))
        print(f"\ntotal {doc['total_s']:.0f} s")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
            log(f"wrote {args.json}")
        failed = [r for r, v in results.items() if v.get("status") == "failed"]
        return 1 if failed else 0
    finally:
        if args.keep_work:
            log(f"scratch kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
