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
FAST_ROWS = "raw_forward,docstream_batch_sqlite,pipeline_overhead,stages"


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
    with TreeSampler(proc.pid, interval_s=0.05) as sampler:
        proc.wait(timeout=30)
        time.sleep(0.1)
    assert sampler.max_procs >= 2
    assert sampler.peak_mb > 80


def test_ratios_mark_met_missed_and_missing() -> None:
    ok = {"status": "ok"}
    results = {
        "raw_forward": {**ok, "docs_s": 300.0},
        "hf_pipeline_b1": {**ok, "docs_s": 60.0},
        "docstream_batch_sqlite": {**ok, "docs_s": 270.0, "job_peak_rss_mb": 1500.0},
        "pipeline_overhead": {**ok, "docs_s": 4000.0, "job_peak_rss_mb": 900.0},
        "docstream_stream": {"status": "not available", "docs_s": None},
    }
    r = ratios(results, None)
    assert r["docstream_batch_sqlite/raw_forward"]["status"] == "met"  # 0.9 >= 0.85
    assert r["docstream_batch_sqlite/hf_pipeline_b1"]["status"] == "met"  # 4.5 >= 3
    assert r["docstream_batch_sqlite/beam_stock"]["status"] == "n/a"
    assert r["docstream_stream/raw_forward"]["status"] == "n/a"
    assert r["pipeline_overhead docs/s"]["status"] == "missed"
    assert r["job peak RSS MB"] == {"value": 1500.0, "target": 3072, "row":
                                    "docstream_batch_sqlite", "status": "met"}
    assert {name for name, *_ in TARGETS} <= set(r)


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
    assert set(doc["results"]["stages"]["stages"]) >= {
        "clean", "tokenize", "sentences", "chunk", "model", "write"}
    for entry in doc["ratios"].values():
        assert entry["status"] in ("met", "missed", "n/a")
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
