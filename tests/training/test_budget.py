"""The time budget's planner, clock and step timer, and the refusal of provisional artifacts.

No model is trained here: the planner is fed measured-looking costs, and the provisional
artifact is a manifest written by hand.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from docstream.cli import main
from docstream.model.artifact import (
    HEAD_FILE,
    MANIFEST,
    PROVISIONAL,
    BaseModelRef,
    ModelManifest,
    base_weights_sha256,
    read_manifest,
)
from docstream.model.bundled import bundled_model_dir
from docstream.model.errors import ArtifactError
from docstream.model.loader import load_model
from docstream.training.budget import (
    AGG_PASSES,
    END_SHARE,
    MARGIN_S,
    SAFETY,
    Budget,
    PostCosts,
    StepTimer,
    describe,
    plan_post,
    process_age,
    reserve_for,
    stratified_indices,
)


def costs(per_window: float = 0.01, fixed: float = 2.0, doc_s: float = 0.0) -> PostCosts:
    """fp32 + bf16 + int8 at `per_window` each (int8's build is the fixed cost)."""
    return PostCosts(load_s=0.0, build_s={"fp32": 0.0, "bf16": 0.0, "int8": fixed},
                     window_s={"fp32": per_window, "bf16": per_window, "int8": per_window},
                     checked=("fp32", "bf16", "int8"), doc_s=doc_s, write_s=0.0,
                     checkpoint_s=0.5)


# --- the planner ---------------------------------------------------------------------------

def test_cost_model_adds_fixed_windows_and_aggregation() -> None:
    c = costs(per_window=0.01, fixed=2.0, doc_s=0.001)
    assert c.fixed_s() == pytest.approx(2.0)
    assert c.per_window_s() == pytest.approx(0.03)
    assert c.estimate(windows=100, docs=20) == pytest.approx(2.0 + 3.0 + 20 * 0.001 * AGG_PASSES)
    # a validation pass in the loop: one precision, one aggregation pass
    assert c.validation_s("bf16", windows=100, docs=20) == pytest.approx(1.0 + 0.02)
    assert reserve_for(10.0, 60.0) == pytest.approx(SAFETY * 10 + MARGIN_S + END_SHARE * 60)


def test_everything_fits_means_the_whole_validation_set() -> None:
    windows = [4] * 40  # 160 windows: 2 + 4.8 s
    plan = plan_post(costs(), windows, list(range(40)), allowance_s=100.0, limit_s=600.0)
    assert plan.docs == tuple(range(40)) and not plan.capped
    assert plan.windows == plan.of_windows == 160
    assert plan.estimate_s == pytest.approx(2.0 + 160 * 0.03)
    assert plan.reserve_s == pytest.approx(reserve_for(plan.estimate_s, 600.0))
    no_limit = plan_post(costs(), windows, list(range(40)), allowance_s=None, limit_s=None)
    assert len(no_limit.docs) == 40


def test_a_tight_budget_caps_the_set_to_what_fits() -> None:
    windows = [5] * 100  # 500 windows, 0.15 s a document over three precisions
    order = list(reversed(range(100)))
    allowance = 12.0
    plan = plan_post(costs(), windows, order, allowance_s=allowance, limit_s=60.0)
    n = len(plan.docs)
    assert plan.capped and 16 <= n < 100
    assert plan.reserve_s <= allowance  # the largest prefix that fits ...
    one_more = reserve_for(costs().estimate(5 * (n + 1), n + 1), 60.0)
    assert one_more > allowance  # ... and no larger
    assert plan.docs == tuple(sorted(order[:n]))  # taken in the given order
    assert plan.as_dict() == {"docs": n, "of_docs": 100, "windows": 5 * n, "of_windows": 500,
                              "capped": True}


def test_the_set_never_shrinks_below_the_minimum() -> None:
    plan = plan_post(costs(), [5] * 100, list(range(100)), allowance_s=0.5, limit_s=60.0,
                     min_docs=16)
    assert len(plan.docs) == 16
    assert plan.reserve_s > 0.5  # it does not fit: the run will say so, and finish late
    few = plan_post(costs(), [5] * 6, list(range(6)), allowance_s=0.0, limit_s=60.0)
    assert len(few.docs) == 6


def test_long_documents_count_by_their_windows() -> None:
    short = plan_post(costs(), [1] * 100, list(range(100)), allowance_s=10.0, limit_s=None)
    long = plan_post(costs(), [8] * 100, list(range(100)), allowance_s=10.0, limit_s=None)
    assert len(long.docs) < len(short.docs)


def test_stratified_prefix_keeps_label_shares() -> None:
    labels = [0] * 60 + [1] * 30 + [2] * 10
    order = stratified_indices(labels, seed=3)
    assert sorted(order) == list(range(100))
    assert order == stratified_indices(labels, seed=3)
    prefix = Counter(labels[i] for i in order[:20])
    assert prefix == {0: 12, 1: 6, 2: 2}


# --- the clock and the step timer ----------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_budget_reserves_time_for_the_work_after_the_loop() -> None:
    clock = FakeClock()
    budget = Budget(limit_s=60.0, started=90.0, clock=clock)  # started 10 s ago
    assert budget.limited and budget.elapsed() == 10.0 and budget.remaining() == 50.0
    budget.reserve_s = 15.0
    assert budget.loop_left() == 35.0
    assert budget.fits(35.0) and not budget.fits(35.5)
    clock.now += 30.0
    assert budget.fits(5.0) and not budget.fits(6.0)
    assert budget.mark("loop") == 40.0 and budget.marks == {"loop": 40.0}
    unlimited = Budget(limit_s=None, started=0.0, clock=clock)
    assert not unlimited.limited and unlimited.fits(1e9)


def test_step_timer_leans_to_slow_steps_and_skips_the_warm_up() -> None:
    timer = StepTimer(window=4)
    assert timer.estimate() is None and timer.median() is None
    timer.add(9.0)  # first step: warm-up
    assert timer.estimate() == 9.0
    for s in (3.0, 3.2, 2.9):
        timer.add(s)
    assert timer.estimate() == pytest.approx(3.0)  # median of the steps after the first
    timer.add(5.0)  # a slow step (another process took the core): believed at once
    assert timer.estimate() == 5.0
    assert timer.count == 5


def test_process_age_is_the_age_of_this_process() -> None:
    age = process_age()
    if age is None:
        pytest.skip("no /proc here")
    assert 0.0 < age < 24 * 3600


def test_describe_says_why_training_stopped() -> None:
    info = {"limit_s": 60.0, "used_s": 57.4, "stopped_by": "budget", "steps_planned": 171,
            "stopped_at": {"epoch": 1, "batch": 11, "of_batches": 57, "step": 11},
            "calibration": {"docs": 16, "of_docs": 24, "capped": True},
            "checkpoint_kept": True}
    line = describe(info)
    assert "stopped by the time limit in epoch 1 after 11 of 57 batches" in line
    assert "16 of 24 val docs" in line and "57 s of the 60 s limit" in line
    assert "--resume" in line
    assert describe({"stopped_by": "epochs", "used_s": 12.0, "limit_s": None}).startswith(
        "ran every epoch; 12 s (no time limit)")
    assert describe({"stopped_by": "converged", "used_s": 1.0, "limit_s": 60}).startswith(
        "converged")


# --- provisional artifacts -----------------------------------------------------------------

def provisional_artifact(directory: Path) -> Path:
    """An artifact folder whose manifest says a training run did not finish."""
    directory.mkdir(parents=True)
    manifest = ModelManifest(name="m", version="0.0.1", mode="head", labels=["a", "b"],
                             base_model=BaseModelRef(weights_sha256=base_weights_sha256()),
                             status="provisional")
    (directory / MANIFEST).write_text(manifest.model_dump_json(), encoding="utf-8")
    (directory / HEAD_FILE).write_bytes(b"")
    return directory


def test_provisional_artifact_is_refused_in_one_line(tmp_path: Path) -> None:
    art = provisional_artifact(tmp_path / "model")
    with pytest.raises(ArtifactError) as e:
        read_manifest(art)
    assert PROVISIONAL in str(e.value) and "\n" not in str(e.value)
    assert "rerun `docstream train` with --resume" in str(e.value)
    with pytest.raises(ArtifactError, match="provisional"):
        load_model(art)
    assert read_manifest(art, allow_provisional=True).status == "provisional"  # training


def test_provisional_artifact_is_refused_by_run_register_and_evaluate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    art = provisional_artifact(tmp_path / "model")
    sink = tmp_path / "run.db"
    assert main(["run", "--model", str(art), "--sink", f"sqlite:///{sink}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and PROVISIONAL in err[0] and err[0].startswith("docstream run:")
    assert not sink.exists()  # refused before anything started
    db = f"sqlite:///{tmp_path / 'reg.db'}"
    assert main(["model", "--db", db, "register", str(art)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and PROVISIONAL in err[0] and err[0].startswith("docstream model:")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "x", "label": "a"}) + "\n", encoding="utf-8")
    code = main(["evaluate", "--model", str(art), "--data", str(data),
                 "--report", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and PROVISIONAL in err[0]


def test_manifests_without_a_status_stay_valid(tmp_path: Path) -> None:
    bundled = json.loads((bundled_model_dir() / MANIFEST).read_text(encoding="utf-8"))
    assert "status" not in bundled  # written before the field existed
    assert read_manifest(bundled_model_dir()).status == "complete"
    assert ModelManifest.model_validate(bundled).training.budget is None
