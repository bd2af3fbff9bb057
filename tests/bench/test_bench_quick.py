"""The benchmark runs end to end and writes its JSON; nothing here asserts a speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.data import GENERATED_SOURCE, LONG_SHARE, POSTS_PER_LONG_DOC, make_docs, post_rows
from bench.measure import TreeSampler
from bench.report import TARGETS, ratios, table

REPO = Path(__file__).resolve().parents[2]
# Fast rows only: docstream_stream needs Kafka and minutes; the HF and Beam rows are slow.
FAST_ROWS = "raw_forward,raw_forward_windows,docstream_batch_sqlite,pipeline_overhead,stages"


def fake_rows(n: int) -> list[dict]:
    labels = ["World", "Sports", "Business", "Sci/Tech"]
    return [{"id": f"agnews-test-{i:05d}", "text": f"Post number {i}.", "label": labels[i % 4],
             "split": "test"} for i in range(1, n + 1)]


def test_docs_mix_posts_and_long_documents() -> None:
    docs = make_docs(100, seed=1, test_rows=fake_rows(200))
    long_docs = [d for d in docs if d["id"].startswith("bench-long-")]
    assert len(docs) == 100
    assert len(long_docs) == round(100 * LONG_SHARE)
    for d in long_docs:
        assert d["text"].count("Post number") == POSTS_PER_LONG_DOC
    assert make_docs(100, seed=1, test_rows=fake_rows(200)) == docs  # seeded


def test_full_size_is_the_whole_test_split_plus_long_docs() -> None:
    docs = make_docs(None, test_rows=fake_rows(760))
    assert sum(not d["id"].startswith("bench-long-") for d in docs) == 760
    assert sum(d["id"].startswith("bench-long-") for d in docs) == 40


def test_without_shared_only_a_quick_run_falls_back_to_generated_posts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCSTREAM_SHARED", str(tmp_path))  # no data/ag_news there
    with pytest.raises(FileNotFoundError, match="DOCSTREAM_SHARED"):
        post_rows(allow_generated=False)  # the full benchmark needs AG News
    rows = post_rows(allow_generated=True)
    assert rows.source == GENERATED_SOURCE and rows.notice and "\n" not in rows.notice
    assert {r["label"] for r in rows.rows} == {"World", "Sports", "Business", "Sci/Tech"}
    assert all(r["split"] == "test" for r in rows.rows)
    docs = make_docs(400, test_rows=rows.rows)
    assert len(docs) == 400 and sum(d["id"].startswith("bench-long-") for d in docs) == 20


def test_tree_sampler_counts_children() -> None:
    code = ("import subprocess, sys, time; "
            "c = subprocess.Popen([sys.executable, '-c', 'x = bytearray(80 << 20); "
            "import time; time.sleep(1.5)']); time.sleep(1.5); c.wait()")
    proc = subprocess.Popen([sys.executable, "-c", code])
    with TreeSampler(proc.pid, interval_s=0.05, pss=True) as sampler:
        proc.wait(timeout=30)
        time.sleep(0.1)
    assert sampler.max_procs >= 2
    assert sampler.peak_mb > 80
    assert 80 < (sampler.peak_pss_mb or 0) <= sampler.peak_mb


def test_foreign_cores_is_the_machines_busy_time_minus_ours() -> None:
    from bench.measure import foreign_cores

    assert foreign_cores(busy_s=30.0, own_s=20.0, wall_s=10.0) == 1.0
    assert foreign_cores(busy_s=19.0, own_s=20.0, wall_s=10.0) == 0.0  # clock skew: never < 0


def test_ratios_mark_met_missed_and_missing() -> None:
    ok = {"status": "ok"}
    results = {
        "raw_forward": {**ok, "docs_s": 300.0},
        "raw_forward_windows": {**ok, "docs_s": 250.0},
        "hf_pipeline_b1": {**ok, "docs_s": 60.0},
        "docstream_batch_sqlite": {**ok, "docs_s": 200.0, "steady_docs_s": 230.0,
                                   "docs_s_incl_startup": 150.0, "job_peak_rss_mb": 1500.0},
        "pipeline_overhead": {**ok, "docs_s": 3000.0, "steady_docs_s": 4000.0,
                              "job_peak_rss_mb": 900.0},
        "docstream_stream": {"status": "not available", "docs_s": None},
    }
    r = ratios(results, None)
    # the batch target is the steady rate over the raw pass on the same windows: 230 / 250
    assert r["batch_sqlite steady / raw_forward_windows"]["value"] == 0.92
    assert r["batch_sqlite steady / raw_forward_windows"]["status"] == "met"
    assert r["batch_sqlite / hf_pipeline_b1"]["status"] == "met"  # 200 / 60 >= 3
    assert r["batch_sqlite / beam_stock"]["status"] == "n/a"
    assert r["stream steady / raw_forward_windows"]["status"] == "n/a"
    assert r["pipeline_overhead steady docs/s"] == {"value": 4000.0, "target": 5000.0,
                                                    "status": "missed"}
    info = r["batch_sqlite with start-up / raw_forward_windows"]
    assert info["value"] == 0.6 and info["status"] == "info"
    assert r["job peak RSS MB"] == {"value": 1500.0, "target": 3072, "row":
                                    "docstream_batch_sqlite", "status": "met"}
    assert {name for name, *_ in TARGETS} <= set(r)


def test_write_rates_steady_and_with_startup() -> None:
    from datetime import UTC, datetime, timedelta

    from bench.rows.docstream_batch import write_rates

    launched = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
    started = launched + timedelta(seconds=8)
    at = [started + timedelta(seconds=s) for s in (4.0, 6.0, 8.0, 9.0)]
    rates = write_rates([(at[0], 512), (at[1], 512), (at[2], 512), (at[3], 464)], started,
                        launched)
    assert rates["first_write_after_s"] == 4.0 and rates["last_write_after_s"] == 9.0
    assert rates["steady_docs_s"] == round((512 + 512 + 464) / 5.0, 1)  # after the first write
    assert rates["docs_s_incl_startup"] == round(2000 / 17.0, 1)  # launch to the last write
    one = write_rates([(at[0], 40)], started, launched)
    assert "steady_docs_s" not in one and one["docs_s_incl_startup"] == 3.3
    assert write_rates([], started) == {}


def test_stream_rates_prefer_the_jobs_steady_figure() -> None:
    from bench.rows.stream import stream_rates

    tp = {"docs_s": 180.0, "written": 3000, "last_row_after_s": 30.0,
          "job": {"steady_docs_per_s": 210.0, "first_result_s": 9.5}}
    assert stream_rates(tp)["steady_docs_s"] == 210.0
    assert stream_rates(tp)["docs_s_incl_startup"] == 100.0
    tp["job"] = {}
    assert stream_rates(tp)["steady_docs_s"] == 180.0


def test_windows_are_cut_at_docstreams_lengths() -> None:
    from bench.rows.raw_forward import cut_windows

    ids = list(range(10, 20))
    assert cut_windows(ids, [6, 5, 5], [1], [2]) == [
        [1, 10, 11, 12, 13, 2], [1, 14, 15, 16, 2], [1, 17, 18, 19, 2]]


def test_noop_input_is_repeated_with_new_ids(tmp_path: Path) -> None:
    from bench.data import read_docs
    from bench.rows.docstream_batch import repeated

    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in fake_rows(30)))
    n = repeated(src, tmp_path / "out.jsonl", 70)
    docs = read_docs(tmp_path / "out.jsonl")
    assert n == len(docs) == 90
    assert len({d["id"] for d in docs}) == 90


def test_stream_row_says_why_it_is_not_available(monkeypatch, tmp_path: Path) -> None:
    import argparse

    from bench.rows import stream

    monkeypatch.setattr(stream, "SCRIPT", tmp_path / "missing.py")
    out = stream.run(argparse.Namespace(model=tmp_path, work=tmp_path, quick=True))
    assert out["status"] == "not available"
    assert "stream_latency.py" in out["reason"]


@pytest.mark.slow
def test_quick_run_writes_the_json(tmp_path: Path) -> None:
    """As on a bare clone: no ../shared, so the quick run uses generated posts and says so."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--limit", "40", "--rows", FAST_ROWS,
         "--json", str(out), "--row-timeout", "240"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO), "DOCSTREAM_SHARED": str(tmp_path / "none")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    notices = [line for line in proc.stderr.splitlines() if "no AG News at" in line]
    assert len(notices) == 1 and "generated posts" in notices[0], proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["data"]["source"] == GENERATED_SOURCE
    assert {"machine", "results", "ratios", "accuracy", "data"} <= set(doc)
    for key in ("cpu", "logical_cores", "torch", "torch_threads", "docstream_dtype"):
        assert key in doc["machine"]
    assert doc["data"]["n_docs"] == 40
    assert set(doc["results"]) == set(FAST_ROWS.split(","))
    for name, row in doc["results"].items():
        assert {"status", "peak_rss_mb", "wall_s"} <= set(row), name
        assert row["status"] == "ok", (name, row)
        assert row["docs_s"] > 0
        assert row["peak_rss_mb"] > 0
    assert doc["results"]["docstream_batch_sqlite"]["summary"]["inputs"] == 40
    windows = doc["results"]["raw_forward_windows"]
    assert windows["windows_per_doc"] > 1  # long documents: all their chunks
    for row in ("docstream_batch_sqlite", "pipeline_overhead"):
        seen = doc["results"][row]
        assert seen["docs_s_incl_startup"] > 0, row
        assert seen["defaults"]["audit_pii_policies"] == ["default@1"], row
    assert set(doc["results"]["stages"]["stages"]) >= {
        "clean", "tokenize", "sentences", "chunk", "model", "write"}
    for entry in doc["ratios"].values():
        assert entry["status"] in ("met", "missed", "n/a", "info")
    assert "targets:" in proc.stdout
    # the table renders from the JSON alone
    assert "docstream_batch_sqlite" in table(doc)


@pytest.mark.slow
def test_gpu_script_runs_on_cpu_without_pipeline_packages(tmp_path: Path) -> None:
    """bench/gpu.py needs only torch/transformers/tokenizers/numpy + docstream's model code."""
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        [sys.executable, "bench/gpu.py", "--device", "cpu", "--quick", "--docs", "24",
         "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["imports"]["ok"], doc["imports"]
    assert doc["results"]["raw_forward"]["docs_s"] > 0
    assert any(k.startswith("predictor_") for k in doc["results"])
    assert doc["prefetch_check"]["same_argmax"] == 1.0
