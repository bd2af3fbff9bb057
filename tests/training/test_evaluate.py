"""training.evaluate and the `docstream evaluate` / `docstream train` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docstream.cli import main
from docstream.training.evaluate import bundled_model_dir, evaluate, length_bucket
from docstream.training.train import TrainResult

REPORT_KEYS = {"accuracy", "macro_f1", "per_class", "confusion", "ece", "slices",
               "max_slice_gap", "n", "model", "precision"}


def test_evaluate_writes_report(lora_model: TrainResult, news_data: Path, tmp_path: Path) -> None:
    result = evaluate(news_data, tmp_path / "report", model_dir=lora_model.out, split="test",
                      limit=120, slice_by=["id"])
    report = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    assert set(report) >= REPORT_KEYS
    assert report == json.loads(json.dumps(result.report))
    assert report["n"] == 120
    assert 0.0 <= report["accuracy"] <= 1.0 and 0.0 <= report["ece"] <= 1.0
    assert report["model"]["weights_sha256"] == lora_model.manifest.weights_sha256
    assert set(report["per_class"]) == set(lora_model.manifest.labels)
    assert sum(map(sum, report["confusion"]["matrix"])) == 120
    assert "length_tokens" in report["slices"] and "id" in report["slices"]
    assert sum(s["n"] for s in report["slices"]["length_tokens"].values()) == 120
    assert set(report["max_slice_gap"]) == {"id", "length_tokens"}
    for name in ("confusion.png", "reliability.png", "report.html"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "confusion.png" in html and "reliability.png" in html


def test_cli_min_accuracy_gate(head_model: TrainResult, news_data: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    args = ["evaluate", "--model", str(head_model.out), "--data", str(news_data),
            "--split", "test", "--limit", "60", "--report", str(tmp_path / "r")]
    assert main([*args, "--min-accuracy", "0.99"]) == 1
    assert "below --min-accuracy" in capsys.readouterr().err
    # The tiny head (108 generated posts, one epoch) scores 0.93 on these 60 test posts: it
    # has learnt the topics, and the gate lets it through below that.
    assert main([*args, "--min-accuracy", "0.8"]) == 0


def test_cli_errors_are_one_line(head_model: TrainResult, news_data: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--model", str(head_model.out), "--data",
                 str(tmp_path / "nope.jsonl"), "--report", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tmp_path / "no-model"), "--data", str(news_data),
                 "--report", str(tmp_path / "r")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["train", "--data", str(news_data), "--out", str(tmp_path / "m"),
                 "--val-fraction", "0.9"]) == 2
    assert "val_fraction" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_train_head(news_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli-head"
    code = main(["train", "--data", str(news_data), "--out", str(out), "--mode", "head",
                 "--max-rows", "60", "--epochs", "2", "--name", "cli", "--version", "9.9.9",
                 "--no-progress"])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["name"] == "cli" and manifest["version"] == "9.9.9"
    assert manifest["labels"] == ["Business", "Sci/Tech", "Sports", "World"]  # sorted


def test_length_bucket() -> None:
    assert length_bucket(10) == "1-32"
    assert length_bucket(64) == "33-64"
    assert length_bucket(600) == ">512"


def test_bundled_model_dir_is_in_the_model_package() -> None:
    assert bundled_model_dir().parts[-3:] == ("model", "bundled", "news-topic")
