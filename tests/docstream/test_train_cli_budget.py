"""`docstream train --limit-minutes 1` on long documents: the whole command keeps to the
budget, and what it writes is a complete artifact that `docstream run` uses.

The data are 400 generated news documents of 400+ words (about 1,700 training windows at
the default 128 wordpieces): at the default settings (LoRA, 3 epochs) the loop alone takes
far more than a minute on a CPU (about 15 minutes on 2 shared cores). The wall time is
measured around the subprocess, so it includes Python's start-up and imports, which the
budget also counts (from the process start).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.news_posts import labelled_rows, post_texts

LIMIT_S = 60.0
SLACK = 1.10  # the command must exit within the budget plus 10%


def _docstream(*args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "docstream.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_one_minute_budget_on_long_documents(tmp_path: Path) -> None:
    rows = labelled_rows(train_per_label=100, test_per_label=0, seed=5, long_share=1.0)
    data = tmp_path / "articles.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "model"

    t0 = time.perf_counter()
    proc = _docstream("train", "--data", str(data), "--out", str(out), "--limit-minutes", "1",
                      "--no-progress", cwd=tmp_path, timeout=600)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert wall <= LIMIT_S * SLACK, (
        f"train took {wall:.1f} s of wall time (subprocess, Python start-up included) for a "
        f"{LIMIT_S:.0f} s budget\n{proc.stderr[-3000:]}")

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    budget = manifest["training"]["budget"]
    assert manifest["status"] == "complete"
    assert budget["limit_s"] == LIMIT_S and budget["clock"] == "process start"
    assert budget["used_s"] <= LIMIT_S * SLACK
    # the loop alone would have needed more than the budget at the measured step time
    assert budget["steps_planned"] * budget["step_s"] > LIMIT_S
    assert budget["stopped_by"] == "budget"
    assert 1 <= budget["steps_run"] < budget["steps_planned"]
    assert budget["reserved_s"] > 0 and budget["post_s"] > 0
    # complete: calibrated, checked, hashed, with the data's hash and val metrics
    assert manifest["training"]["data_sha256"]
    assert manifest["metrics"]["val"]["n"] == budget["calibration"]["docs"] > 0
    assert "fp32" in manifest["precision_ok"] and manifest["weights_sha256"]
    assert "budget: stopped by the time limit" in proc.stdout
    assert "--windows-per-doc 1 makes each epoch that much cheaper" in proc.stderr  # the hint
    print(f"\n1-minute budget: wall {wall:.1f} s (subprocess incl. start-up); manifest "
          f"used_s {budget['used_s']}, setup {budget['setup_s']} s, loop {budget['loop_s']} s "
          f"({budget['steps_run']} of {budget['steps_planned']} steps at {budget['step_s']} s), "
          f"post {budget['post_s']} s (reserved {budget['reserved_s']} s), calibration on "
          f"{budget['calibration']['docs']} of {budget['calibration']['of_docs']} val docs")

    # the artifact classifies in `docstream run`
    posts = tmp_path / "posts.jsonl"
    posts.write_text("".join(json.dumps({"id": f"p{i}", "source": "budget-test", "kind": "news",
                                         "text": text}) + "\n"
                             for i, text in enumerate(post_texts(5, seed=9))), encoding="utf-8")
    db = tmp_path / "run.db"
    ran = _docstream("run", "--model", str(out), "--source", str(posts), "--sink",
                     f"sqlite:///{db}", "--no-progress", cwd=tmp_path, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT id, label, model_version FROM classifications "
                              "WHERE source = 'budget-test'").fetchall()
    assert len(stored) == 5
    assert {label for _, label, _ in stored} <= set(manifest["labels"])
    assert {version for _, _, version in stored} == {manifest["version"]}
