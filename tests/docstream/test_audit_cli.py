"""`docstream run --audit-head-out` and `docstream audit verify|head`, end to end (the no-op
model on the bundled sample posts), on both stores: the heads a run emits outside the
database catch the tampering the database alone cannot (a tail cut off, the head reset)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from docstream.cli import main
from docstream.commands.run import default_sample
from docstream.store.audit_chain import HeadFile
from docstream.store.engine import make_engine
from docstream.store.tables import AuditHeadRow, AuditRow

SECRET = "cli-audit-key-0123456789abcdef"


def run_job(url: str, run_id: str, heads: Path, capsys: pytest.CaptureFixture[str],
            *extra: str) -> dict:
    argv = ["run", "--source", default_sample(), "--sink", url, "--model", "noop",
            "--run-id", run_id, "--no-progress", "--pii-policy", "off",
            "--audit-head-out", str(heads), *extra]
    assert main(argv) == 0
    return {"out": capsys.readouterr().out}


def verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["audit", "verify", *args])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def cut_tail(url: str, n: int) -> None:
    """Delete the last `n` records and reset the head to the record before them, past the
    append-only triggers (as the table's owner could)."""
    engine = make_engine(url)
    audit, heads = AuditRow.__table__, AuditHeadRow.__table__
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            for (name,) in conn.execute(text("SELECT name FROM sqlite_master WHERE "
                                             "type = 'trigger' AND tbl_name = 'audit_log'")).all():
                conn.execute(text(f'DROP TRIGGER "{name}"'))
        rows = conn.execute(select(audit.c.seq, audit.c.hash).order_by(audit.c.seq)).all()
        keep = rows[-n - 1]
        conn.execute(audit.delete().where(audit.c.seq > keep.seq))
        conn.execute(update(heads).values(head_hash=keep.hash, length=len(rows) - n))
    engine.dispose()


def test_run_emits_its_heads_and_verify_uses_them(
        db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head_file = tmp_path / "heads.json"
    printed = run_job(db_url, "cli-1", head_file, capsys)["out"]
    (head,) = HeadFile.model_validate_json(head_file.read_text()).audit_heads
    assert head.chain.startswith("cli-1/") and head.length > 100 and not head.keyed
    assert f"audit chain {head.chain}: {head.length:,} records, head {head.head_hash} " \
           "(unkeyed)" in printed

    code, out, _ = verify(capsys, "--db", db_url, "--head", str(head_file))
    assert code == 0
    assert out == [f"verified {head.length:,} records in 1 chains (unkeyed: plain SHA-256, no "
                   "DOCSTREAM_AUDIT_KEY set), 1 external heads matched"]

    assert main(["audit", "head", "--db", db_url, "--run", "cli-1", "--json"]) == 0
    assert HeadFile.model_validate_json(capsys.readouterr().out).audit_heads == [head]

    cut_tail(db_url, 2)
    code, out, _ = verify(capsys, "--db", db_url)
    assert code == 0  # consistent in the database: only the head kept outside tells
    code, out, _ = verify(capsys, "--db", db_url, "--head", str(head_file))
    assert code == 1
    assert out == [f"chain {head.chain}: the external head says {head.length:,} records; the "
                   f"chain holds {head.length - 2:,}: the last 2 of them were deleted "
                   "(truncated)"]
    code, out, _ = verify(capsys, "--db", db_url, "--head", head.head_hash)
    assert code == 1 and "is in no chain" in out[0]


def test_keyed_run_and_the_summary_json_as_head(
        sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "audit.key"
    key_file.write_text(SECRET + "\n")
    monkeypatch.setenv("DOCSTREAM_AUDIT_KEY_FILE", str(key_file))
    head_file = tmp_path / "heads.json"
    summary = json.loads(run_job(sqlite_url, "cli-k", head_file, capsys, "--json")["out"])
    (head,) = summary["audit_heads"]
    assert head["keyed"] is True
    assert SECRET not in head_file.read_text() and SECRET not in json.dumps(summary)
    summary_file = tmp_path / "summary.json"
    summary_file.write_text(json.dumps(summary))

    code, out, _ = verify(capsys, "--db", sqlite_url, "--head", str(summary_file))
    assert code == 0 and "(keyed: HMAC-SHA256)" in out[0]

    monkeypatch.delenv("DOCSTREAM_AUDIT_KEY_FILE")
    code, out, err = verify(capsys, "--db", sqlite_url)
    assert code == 2 and not out
    assert err.startswith("docstream audit: error: 1 of the 1 audit chains are keyed")
    assert len(err.splitlines()) == 1

    monkeypatch.setenv("DOCSTREAM_AUDIT_KEY", "another-key-of-enough-length")
    code, out, _ = verify(capsys, "--db", sqlite_url)
    assert code == 1 and len(out) == 21 and "forged without the key" in out[0]


def test_bad_arguments_are_one_line(sqlite_url: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    not_heads = tmp_path / "x.json"
    not_heads.write_text('{"audit_heads": [{"chain": "c"}]}')
    for value, message in ((str(tmp_path / "missing"), "neither a 64-hex hash nor"),
                           (str(not_heads), "not a head file (audit_heads.0.head_hash")):
        code, _, err = verify(capsys, "--db", sqlite_url, "--head", value)
        assert code == 2 and message in err and len(err.splitlines()) == 1
    monkeypatch.setenv("DOCSTREAM_AUDIT_KEY", "short")
    assert main(["run", "--sink", sqlite_url, "--model", "noop", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "audit key is too short" in err and "short" not in err.split("too short")[1]
    monkeypatch.delenv("DOCSTREAM_AUDIT_KEY")
    assert main(["run", "--sink", sqlite_url, "--model", "noop", "--no-progress",
                 "--audit-head-out", str(tmp_path / "no" / "dir.json")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_a_rerun_with_the_same_run_id_adds_no_chain(
        sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    run_job(sqlite_url, "again", first, capsys)
    run_job(sqlite_url, "again", second, capsys)  # every record already there: none added
    assert first.read_text() == second.read_text()
    code, out, _ = verify(capsys, "--db", sqlite_url, "--head", str(first), "--head",
                          str(second))
    assert code == 0 and " in 1 chains " in out[0] and "2 external heads matched" in out[0]
