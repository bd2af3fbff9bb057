"""Tiny in-process runs: a budget stop, a run killed after its loop, and --resume after both.

The budget stop is forced (the step timer is told every step takes hours once three steps
ran), so the test does not depend on this machine's speed; tests/docstream/
test_train_cli_budget.py runs a real one-minute budget.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docstream.model.artifact import MANIFEST, read_manifest
from docstream.model.errors import ArtifactError
from docstream.model.loader import load_model
from docstream.training import checkpoint as ckpt
from docstream.training import train as train_module
from docstream.training.budget import Budget, StepTimer, describe
from docstream.training.train import train
from tests.training.conftest import tiny_config

# peft calls a transformers API that is deprecated in v5; not ours to fix.
pytestmark = [pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning"),
              pytest.mark.slow]  # each test trains tiny head models (seconds each)


def quiet(_line: str) -> None:
    pass


def test_budget_stop_writes_a_complete_artifact_and_resume_trains_on(
    news_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "model"
    config = tiny_config(news_data, out, "head", epochs=3, limit_minutes=10)
    real_estimate = StepTimer.estimate

    def hours_after_three(self: StepTimer) -> float | None:
        return 3600.0 if self.count >= 3 else real_estimate(self)

    monkeypatch.setattr(StepTimer, "estimate", hours_after_three)
    stopped = train(config, note=quiet)
    monkeypatch.setattr(StepTimer, "estimate", real_estimate)

    budget = stopped.budget
    assert budget["stopped_by"] == "budget" and budget["steps_run"] == 3
    n_batches = budget["stopped_at"]["of_batches"]
    assert n_batches == 2  # 108 docs, about 120 chunks, 64 a batch
    assert budget["stopped_at"] == {"epoch": 2, "batch": 3 - n_batches,
                                    "of_batches": n_batches, "step": 3}
    assert budget["limit_s"] == 600.0 and 0 < budget["used_s"] < 600.0
    assert budget["costs"]["ms_per_window"].keys() >= {"fp32", "int8"}
    m = read_manifest(out)  # complete, calibrated, checked
    assert m.status == "complete" and m.training.budget is not None
    assert m.training.budget.stopped_by == "budget"
    assert m.training.budget.reserved_s and m.training.budget.reserved_s > 0
    assert m.metrics["val"]["n"] == 12 and "fp32" in m.precision_ok
    assert m.training.data_sha256  # the final manifest, not the provisional one
    ats = [h["at"] for h in m.training.history]  # type: ignore[attr-defined]
    assert ats == ["epoch 1", "epoch 2 (partial)"]  # the partial state was compared
    load_model(out)
    kept = ckpt.latest_checkpoint(out)
    assert kept is not None and kept.name == f"epoch-001_b{3 - n_batches:06d}.pt"

    resumed = train(tiny_config(news_data, out, "head", epochs=3, limit_minutes=10,
                                resume=True), note=quiet)
    assert resumed.budget["stopped_by"] == "epochs"
    assert resumed.manifest.training.steps == 3 * n_batches  # type: ignore[attr-defined]
    assert resumed.manifest.training.epochs_run == 3  # type: ignore[attr-defined]
    assert resumed.budget["steps_run"] == 3 * n_batches - 3  # only the missing steps
    assert not (out / "checkpoints").exists()
    load_model(out)


def test_a_run_killed_after_its_loop_leaves_a_provisional_artifact_that_resume_completes(
    news_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "model"

    def killed(*_args: object, **_kw: object) -> None:
        raise KeyboardInterrupt("simulated kill during calibration")

    monkeypatch.setattr(train_module, "finalize", killed)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(news_data, out, "head", keep_checkpoints=False), note=quiet)
    monkeypatch.undo()
    raw = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert raw["status"] == "provisional" and raw["training"]["stage"] == "finalizing"
    assert raw["metrics"] == {} and raw["temperature"] == 1.0  # nothing final about it
    with pytest.raises(ArtifactError, match="provisional: a training run was interrupted"):
        load_model(out)
    assert ckpt.latest_checkpoint(out) is not None

    done = train(tiny_config(news_data, out, "head", resume=True), note=quiet)
    assert done.manifest.status == "complete"
    assert done.budget["steps_run"] == 0  # the checkpoint had the whole epoch
    assert read_manifest(out).weights_sha256 == done.manifest.weights_sha256
    assert sorted(p.name for p in out.iterdir()) == ["head.safetensors", "manifest.json"]


def test_a_fresh_run_replaces_an_old_artifact_only_once_training_starts(
    news_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "model"
    first = train(tiny_config(news_data, out, "head"), note=quiet)
    seen: list[str] = []

    def crash_in_loop(*_args: object, **_kw: object) -> None:
        seen.append(json.loads((out / MANIFEST).read_text(encoding="utf-8"))["status"])
        raise KeyboardInterrupt("simulated kill during training")

    monkeypatch.setattr(train_module, "_run_loop", crash_in_loop)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(news_data, out, "head", seed=1), note=quiet)
    assert seen == ["provisional"]  # the old manifest was gone before the loop began
    assert not (out / "head.safetensors").exists()  # and so were the old weights
    with pytest.raises(ArtifactError, match="provisional"):
        read_manifest(out)
    assert first.manifest.status == "complete"


def test_head_mode_encodes_only_what_the_budget_allows(
    news_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no time left after the first block of training windows, head mode trains on
    that block alone (one step), and still writes a complete, calibrated artifact."""
    monkeypatch.setattr(train_module, "EMBED_BLOCK", 32)
    monkeypatch.setattr(Budget, "fits", lambda self, seconds: False)
    out = tmp_path / "model"
    result = train(tiny_config(news_data, out, "head", epochs=2, limit_minutes=10), note=quiet)
    budget = result.budget
    assert budget["training_chunks"]["used"] == 32 < budget["training_chunks"]["of"]
    assert budget["stopped_by"] == "budget" and budget["steps_run"] == 1
    assert "trained on 32 of" in describe(budget)
    monkeypatch.undo()
    assert read_manifest(out).status == "complete"
    assert result.manifest.temperature > 0 and result.manifest.metrics["val"]["n"] == 12
