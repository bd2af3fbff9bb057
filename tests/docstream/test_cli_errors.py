"""Argument and configuration errors are one clear line and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from docstream.cli import main


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "docstream.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--source", "/nonexistent/x.jsonl", "--model", "noop"], "no such file"),
        (["run", "--sink", "mysql://x/y", "--model", "noop"], "unsupported database"),
        (["run", "--model", "/nonexistent-model"], "is not a directory"),
        (["query", "--db", "sqlite:////nonexistent/d.db"], "no database at"),
    ],
)
def test_errors_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("docstream")]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_corrupt_model_is_refused_before_the_pipeline(tmp_path: Path) -> None:
    bad = tmp_path / "model"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    proc = run_cli("run", "--model", str(bad), "--sink", f"sqlite:///{tmp_path}/d.db",
                   cwd=tmp_path)
    assert proc.returncode == 2 and "not readable JSON" in proc.stderr
    assert not (tmp_path / "d.db").exists()  # nothing started


def test_schema_command_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "post"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "Post"
    assert main(["schema", "classification"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "Classification"


def test_bad_argument_exits_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["query", "--since", "yesterday"])
    assert e.value.code == 2
    assert "not an ISO 8601 time" in capsys.readouterr().err
