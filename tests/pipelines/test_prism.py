"""Finding the Prism binary: never built at run time; missing, one line naming both remedies."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import apache_beam
import pytest

from docstream.errors import ConfigError
from docstream.pipelines.prism import PATCH_LEVEL, PRISM_ENV, cached_prism, find_prism

REPO = Path(__file__).resolve().parents[2]


def fake_binary(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture()
def no_prism(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No $DOCSTREAM_PRISM, an empty cache, no `prism` on PATH."""
    monkeypatch.delenv(PRISM_ENV, raising=False)
    monkeypatch.setenv("DOCSTREAM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    return tmp_path


def test_missing_prism_is_one_line_naming_both_remedies(no_prism: Path) -> None:
    with pytest.raises(ConfigError) as e:
        find_prism()
    message = str(e.value)
    assert "\n" not in message
    assert "scripts/build-prism" in message and PRISM_ENV in message


def test_env_var_is_used(no_prism: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = fake_binary(no_prism / "elsewhere" / "prism")
    fake_binary(cached_prism())  # the cache comes after the variable
    monkeypatch.setenv(PRISM_ENV, str(binary))
    assert find_prism() == str(binary)


def test_env_var_naming_no_binary_is_refused(no_prism: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    monkeypatch.setenv(PRISM_ENV, str(no_prism / "nothing-here"))
    with pytest.raises(ConfigError, match=PRISM_ENV):
        find_prism()


def test_explicit_comes_first(no_prism: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = fake_binary(no_prism / "mine" / "prism")
    monkeypatch.setenv(PRISM_ENV, str(fake_binary(no_prism / "env" / "prism")))
    assert find_prism(str(explicit)) == str(explicit)


def test_cache_of_build_prism_then_path(no_prism: Path) -> None:
    cached = cached_prism()
    assert cached == (no_prism / "cache" / "prism" / f"v{apache_beam.__version__}-{PATCH_LEVEL}"
                      / "prism")
    on_path = fake_binary(no_prism / "bin" / "prism")
    assert find_prism() == str(on_path)
    fake_binary(cached)
    assert find_prism() == str(cached)


def test_cache_path_follows_build_prism() -> None:
    """The rule in scripts/build-prism (patch level, layout) and cached_prism agree."""
    script = (REPO / "scripts" / "build-prism").read_text(encoding="utf-8")
    assert f"PATCH_LEVEL={PATCH_LEVEL}\n" in script
    assert "BIN_DIR=$CACHE/prism/v$PRISM_VERSION-$PATCH_LEVEL\n" in script
    assert "CACHE=${DOCSTREAM_CACHE:-$HOME_DIR/.cache/docstream}\n" in script


def test_cli_prints_one_line_when_prism_is_missing(tmp_path: Path) -> None:
    """`docstream run` on a kafka:// source without Prism: exit 2, one line, no traceback,
    before any broker is contacted."""
    env = {**os.environ, "DOCSTREAM_CACHE": str(tmp_path / "cache"),
           "PATH": os.path.dirname(sys.executable), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    env.pop(PRISM_ENV, None)
    proc = subprocess.run(
        [sys.executable, "-m", "docstream.cli", "run", "--source", "kafka://127.0.0.1:1/t",
         "--model", "noop", "--sink", f"sqlite:///{tmp_path}/d.db"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("docstream")]
    assert len(lines) == 1 and lines[0].startswith("docstream run: error: "), proc.stderr
    assert "scripts/build-prism" in lines[0] and PRISM_ENV in lines[0]
    assert "Traceback" not in proc.stderr
