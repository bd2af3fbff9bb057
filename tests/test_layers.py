"""The house rules of ARCHITECTURE.md, read from the source: who may import whom.

Each package folder installs as docstream.<folder>. Inside a package imports are relative;
across packages they are absolute (docstream.X). The checks parse every module with `ast`,
so they hold for imports inside functions too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "preprocess", "model", "privacy", "store", "streaming", "pipelines",
            "training", "web", "docstream")
MAX_LINES = 400
LONG_REASON = "Long module:"

# package -> what it must never import (top-level distribution names or docstream subpackages)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "schemas": ("apache_beam", "kafka", "sqlalchemy", "torch", "docstream.model",
                "docstream.store", "docstream.streaming", "docstream.pipelines",
                "docstream.training"),
    "preprocess": ("apache_beam", "kafka", "sqlalchemy", "docstream.store",
                   "docstream.streaming", "docstream.pipelines", "docstream.training"),
    "model": ("apache_beam", "kafka", "sqlalchemy", "spacy", "docstream.store",
              "docstream.streaming", "docstream.pipelines", "docstream.training"),
    # streaming/ is Kafka I/O, including the Beam source over it; it knows no SQL nor model.
    "streaming": ("sqlalchemy", "torch", "docstream.model", "docstream.store",
                  "docstream.pipelines", "docstream.training"),
    "privacy": ("apache_beam", "kafka", "sqlalchemy", "torch", "docstream.model",
                "docstream.store", "docstream.streaming", "docstream.pipelines",
                "docstream.training"),
    "training": ("apache_beam", "kafka", "sqlalchemy", "docstream.store", "docstream.streaming",
                 "docstream.pipelines"),
    "store": ("apache_beam", "kafka", "torch", "docstream.model", "docstream.streaming",
              "docstream.pipelines", "docstream.training", "fastapi", "docstream.web"),
    # web/ (docstream serve) reads and writes the store only: no job, no model, no Kafka.
    "web": ("apache_beam", "kafka", "torch", "spacy", "docstream.model", "docstream.preprocess",
            "docstream.streaming", "docstream.pipelines", "docstream.training"),
}
# nothing below the CLI serves pages
for _package in ("schemas", "preprocess", "model", "streaming", "privacy", "training",
                 "pipelines"):
    FORBIDDEN.setdefault(_package, ())
    FORBIDDEN[_package] = (*FORBIDDEN[_package], "fastapi", "docstream.web")


def modules(package: str) -> Iterator[Path]:
    yield from sorted((REPO / package).rglob("*.py"))


def absolute_imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every absolute import in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_import_only_downwards(package: str) -> None:
    bad = [f"{p.relative_to(REPO)}:{line} imports {mod}"
           for p in modules(package) for line, mod in absolute_imports(p)
           if any(_matches(mod, f) for f in FORBIDDEN[package])]
    assert not bad, "\n".join(bad)


def test_nothing_outside_the_cli_imports_it() -> None:
    cli = {REPO / "docstream" / "cli.py", *(REPO / "docstream" / "commands").rglob("*.py")}
    bad = [f"{p.relative_to(REPO)}:{line} imports {mod}"
           for package in (*PACKAGES, "bench")
           for p in modules(package) if p not in cli
           for line, mod in absolute_imports(p)
           if _matches(mod, "docstream.cli") or _matches(mod, "docstream.commands")]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", ["__init__.py", "errors.py"])
def test_the_root_modules_import_nothing(name: str) -> None:
    """The GPU benchmark imports docstream.errors (through model/) without pydantic."""
    assert list(absolute_imports(REPO / "docstream" / name)) == []


def test_packages_use_the_namespace_not_bare_folders() -> None:
    """`from model.x import y` would only work from a checkout, never from the wheel."""
    bare = set(PACKAGES) - {"docstream"}
    bad = [f"{p.relative_to(REPO)}:{line} imports {mod}"
           for package in (*PACKAGES, "bench")
           for p in modules(package) if p != REPO / "bench" / "gpu.py"
           for line, mod in absolute_imports(p)
           if mod.split(".")[0] in bare]
    assert not bad, "\n".join(bad)


def test_no_module_is_long_without_a_reason() -> None:
    long = []
    for package in (*PACKAGES, "bench"):
        for p in modules(package):
            text = p.read_text(encoding="utf-8")
            if text.count("\n") > MAX_LINES and LONG_REASON not in text[:3000]:
                long.append(f"{p.relative_to(REPO)}: {text.count(chr(10))} lines")
    assert not long, (f"modules over {MAX_LINES} lines need '{LONG_REASON} <why>' in their "
                      "docstring:\n" + "\n".join(long))
