"""docstream_stream: Kafka → PostgreSQL through bench/stream_latency.py (the streaming
helper's script, called as it is), in two runs: `--mode throughput` (sustained docs/s from a
waiting backlog), then `--mode latency --rate R` with R = half that rate (produce-to-row
p50/p99). Kafka and PostgreSQL come from scripts/dev-services. The script takes its posts from
the benchmark's own file (a seeded shuffle of it, long documents included), so this row sees
the same mix of texts as the others. The job runs with `docstream run`'s defaults (no flag
but --flush-secs 1.0, itself the default). Rates: `docs_s` (10%..90% of the rows, from
outside), `steady_docs_s` (once writing: the job's own first-to-last write rate) and
`docs_s_incl_startup` (from the job's launch to its last row)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from bench.data import REPO
from bench.measure import TreeSampler, kill_tree

SCRIPT = REPO / "bench" / "stream_latency.py"
BACKLOG = {"quick": 1000, "full": 3000}
LATENCY_SECONDS = {"quick": 10, "full": 60}
QUICK_FALLBACK_RATE = 20.0
RUN_TIMEOUT_S = 900


def _services() -> str | None:
    proc = subprocess.run([str(REPO / "scripts" / "dev-services"), "start", "postgres", "kafka"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        return f"scripts/dev-services start postgres kafka failed: {proc.stderr.strip()[-800:]}"
    return None


def _run_script(extra: list[str], out: Path) -> tuple[dict, float]:
    """Run stream_latency.py; on timeout SIGINT first (its `finally` drops its database and
    stops its job), then kill what is left of the tree. Returns (its JSON, tree peak MB)."""
    cmd = [sys.executable, str(SCRIPT), *extra, "--timeout", "600", "--json", str(out)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    with TreeSampler(proc.pid) as sampler:
        try:
            _out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                kill_tree(proc.pid)
                proc.communicate()
            raise RuntimeError(f"stream_latency.py {' '.join(extra)} took longer than "
                               f"{RUN_TIMEOUT_S} s") from None
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"stream_latency.py {' '.join(extra)} exited {proc.returncode}: "
                           f"{err.strip()[-1500:]}")
    return json.loads(out.read_text(encoding="utf-8")), sampler.peak_mb


def stream_rates(tp: dict) -> dict:
    """The throughput run's two rates: `steady_docs_s`, once writing (the job's own figure:
    inputs committed after its first write unit over the time from it to the last write;
    else the 10%..90% rate seen from outside), and `docs_s_incl_startup`, every row over the
    time from the job's launch (interpreter, Prism, model loading) to the last row seen."""
    job = tp.get("job") or {}
    steady = job.get("steady_docs_per_s")
    out = {"steady_docs_s": steady if steady else tp.get("docs_s"),
           "steady_source": "job summary (first to last write)" if steady
           else "10%..90% of the rows, from outside"}
    last, written = tp.get("last_row_after_s"), tp.get("written")
    out["docs_s_incl_startup"] = round(written / last, 1) if last and written else None
    out["first_result_s"] = job.get("first_result_s")
    out["model_ready_s"] = job.get("model_ready_s")
    return out


def run(args) -> dict:
    if not SCRIPT.is_file():
        return {"status": "not available", "docs_s": None,
                "reason": "bench/stream_latency.py does not exist (the streaming helper writes "
                          "it); no Kafka → PostgreSQL figure"}
    problem = _services()
    if problem:
        return {"status": "not available", "docs_s": None, "reason": problem}
    size = "quick" if args.quick else "full"
    model = ["--model", str(args.model), "--data", str(args.data)]
    tp_doc, tp_peak = _run_script([*model, "--mode", "throughput", "--backlog",
                                   str(BACKLOG[size])], Path(args.work) / "stream_tp.json")
    tp = tp_doc["throughput"]
    docs_s = tp.get("docs_s")
    notes = []
    # 10%..90% of the rows inside one flush gives a near-zero span and an absurd rate.
    plausible = docs_s is not None and 0 < docs_s <= 0.8 * BACKLOG[size]  # span >= 1 s
    if not plausible:
        notes.append(f"throughput figure {docs_s} is not measurable with a backlog of "
                     f"{BACKLOG[size]} (10%..90% of the rows landed within one flush)")
        docs_s = None
    rate = round(docs_s / 2, 1) if docs_s else QUICK_FALLBACK_RATE
    try:
        lat_doc, lat_peak = _run_script([*model, "--mode", "latency", "--rate", str(rate),
                                         "--seconds", str(LATENCY_SECONDS[size])],
                                        Path(args.work) / "stream_lat.json")
    except RuntimeError as e:  # keep the throughput figure; say why latency is missing
        notes.append(f"latency run failed: {e}"[-1200:])
        lat_doc, lat_peak = {"latency": {}}, 0.0
    lat = lat_doc["latency"]
    return {
        "docs_s": docs_s, **stream_rates(tp), "backlog": BACKLOG[size],
        "first_row_after_s": tp.get("first_row_after_s"),
        "latency_rate_docs_s": rate, "latency_p50_ms": lat.get("p50_ms"),
        "latency_p99_ms": lat.get("p99_ms"), "latency_received": lat.get("received"),
        "job_peak_rss_mb": max(tp.get("peak_rss_mb") or 0, lat.get("peak_rss_mb") or 0) or None,
        "job_peak_pss_mb": max(tp.get("peak_pss_mb") or 0, lat.get("peak_pss_mb") or 0) or None,
        "script_tree_peak_rss_mb": max(tp_peak, lat_peak),
        "notes": notes, "throughput_run": tp_doc, "latency_run": lat_doc,
    }
