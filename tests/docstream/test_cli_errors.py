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


PASSWORD = "s3cr3t-pw"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", [
    ["query", "--db", "{url}"],
    ["model", "--db", "{url}", "list"],
    ["run", "--model", "noop", "--sink", "{url}"],
    ["run", "--model", "news@production", "--sink", "{url}"],
    ["run", "--model", "noop", "--sink", "{url}", "--source", "kafka://127.0.0.1:9092/t"],
    ["replay", "--db", "{url}"],
])
def test_an_unreachable_database_is_one_masked_line(
        command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Every command that opens the store: one line, exit 2, never the password."""
    url = f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:{_closed_port()}/posts"
    assert main([c.format(url=url) for c in command]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"docstream {command[0]}: error: cannot reach the database at "
                               "postgresql+psycopg://app:***@127.0.0.1:"), err
    assert PASSWORD not in err


def test_a_database_error_that_escapes_is_still_one_masked_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's safety net: a driver error no layer worded itself."""
    import sqlalchemy.exc

    from docstream.commands import query

    def boom(args: object) -> int:
        raise sqlalchemy.exc.OperationalError(
            f"connect to postgresql://app:{PASSWORD}@db/x failed\n[SQL: select 1]", {},
            ConnectionRefusedError())

    monkeypatch.setattr(query, "run", boom)
    parser_func = main(["query", "--db", "sqlite:///x.db"])
    err = capsys.readouterr().err
    assert parser_func == 2 and len(err.strip().splitlines()) == 1, err
    assert "OperationalError" in err and PASSWORD not in err and "[SQL" not in err
