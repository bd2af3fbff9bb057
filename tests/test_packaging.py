"""The wheel holds the one `docstream` namespace and everything the job needs at run time.

Builds the wheel (`pip wheel --no-deps --no-build-isolation`, a few seconds) from a copy of the
source, so a stale build/ folder in the checkout cannot hide a missing file, and reads its file
list. `scripts/check-wheel` goes further: installs it in a clean venv and runs it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IGNORED = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__",
                                 "*.pyc", ".pytest_cache", ".ruff_cache", ".cache", "runs",
                                 "reports", "bench-results", "docstream.db*")


def _copy_source(dest: Path) -> None:
    """The files git would commit (tracked or untracked-but-not-ignored), else the tree minus
    the usual build and cache folders."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=REPO, capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        shutil.copytree(REPO, dest, ignore=IGNORED)
        return
    for name in filter(None, out.decode().split("\0")):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    root = tmp_path_factory.mktemp("wheel")
    src, out = root / "src", root / "out"
    src.mkdir()
    _copy_source(src)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         str(src), "-w", str(out)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheels = list(out.glob("docstream-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as zf:
        yield zf


def _package_dirs() -> dict[str, str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    dirs: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    return dirs


def test_only_the_docstream_namespace(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    tops = {n.split("/", 1)[0] for n in names}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert len(dist_info) == 1
    assert tops - dist_info == {"docstream"}, sorted(tops)
    top_level = wheel.read(f"{dist_info.pop()}/top_level.txt").decode().split()
    assert top_level == ["docstream"]
    assert not any(n.startswith(("docstream/bench/", "docstream/tests/")) for n in names)


def test_every_module_of_every_folder_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    """The explicit `packages` list misses nothing: a new subpackage must be added there."""
    names = set(wheel.namelist())
    missing = []
    for package, folder in _package_dirs().items():
        base = package.replace(".", "/")
        for path in (REPO / folder).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            rel = path.relative_to(REPO / folder).as_posix()
            if f"{base}/{rel}" not in names:
                missing.append(f"{folder}/{rel}")
    assert not missing, f"not in the wheel (add the package to pyproject.toml): {missing}"


def test_run_time_data_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert "docstream/samples/posts.jsonl" in names
    assert "docstream/store/migrations/script.py.mako" in names
    assert "docstream/store/migrations/env.py" in names
    versions = sorted(p.name for p in (REPO / "store" / "migrations" / "versions").glob("0*.py"))
    assert versions
    for name in versions:
        assert f"docstream/store/migrations/versions/{name}" in names
    bundled = [p for p in (REPO / "model" / "bundled").rglob("*") if p.is_file()]
    assert any(p.name == "manifest.json" for p in bundled)
    for path in bundled:
        rel = path.relative_to(REPO / "model").as_posix()
        assert f"docstream/model/{rel}" in names, rel


def test_console_script(wheel: zipfile.ZipFile) -> None:
    entry_points = next(n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    text = wheel.read(entry_points).decode()
    assert "docstream = docstream.cli:main" in text


def _lock() -> dict[str, tuple[str, int]]:
    """requirements.lock: normalised name -> (pinned version, number of hashes)."""
    from packaging.utils import canonicalize_name

    pins: dict[str, tuple[str, int]] = {}
    current = ""
    for line in (REPO / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            name, _, rest = line.partition("==")
            current = str(canonicalize_name(name.split("[")[0]))
            pins[current] = (rest.split()[0].rstrip("\\").strip(), 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            version, n = pins[current]
            pins[current] = (version, n + 1)
    return pins


def test_lock_pins_every_dependency_within_its_range() -> None:
    """requirements.lock is hashed and agrees with pyproject.toml's bounded ranges."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = _lock()
    assert pins and all(n > 0 for _, n in pins.values()), "every pin needs --hash lines"
    for spec in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        req = Requirement(spec)
        assert req.specifier, f"{spec}: give it a bounded range"
        assert any(s.operator in ("<", "==", "~=") for s in req.specifier), f"{spec}: no upper bound"
        name = str(canonicalize_name(req.name))
        assert name in pins, f"{req.name} is not in requirements.lock: run scripts/lock"
        assert req.specifier.contains(pins[name][0], prereleases=True), \
            f"requirements.lock pins {name}=={pins[name][0]}, outside {req.specifier}: run scripts/lock"
    for extra in project["optional-dependencies"]["bench"]:
        assert str(canonicalize_name(Requirement(extra).name)) not in pins  # documented: not locked


def test_installed_beam_is_the_locked_one() -> None:
    """scripts/build-prism builds Prism for the installed Beam; the image for the locked one."""
    from importlib.metadata import version

    assert version("apache-beam") == _lock()["apache-beam"][0]
