"""`docstream train --base DIR` end to end on each tested encoder family, then `docstream
run` into SQLite; `evaluate` and `model register` on a folder base; and the one-line
refusal of all of them once the base folder is gone.

The bases are tiny random encoders (tests/tiny_encoders.py), so the predictions mean
nothing: the tests check that every step runs on the family's tokenizer and weights and
that the rows name the model. The commands run in this process (`docstream.cli.main`):
the whole file takes about half a minute on 2 shared cores, most of it the first command's
imports.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from docstream.cli import main
from docstream.model.artifact import read_manifest
from tests.news_posts import LABELS, labelled_rows, long_post, post_texts
from tests.tiny_encoders import FAMILIES

WINDOW = 64  # tokens: the long posts are cut into several windows


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(labelled training rows, posts to classify): 32 rows, 5 posts, long ones in both."""
    root = tmp_path_factory.mktemp("any-base-data")
    rows = labelled_rows(train_per_label=8, test_per_label=0, seed=2, long_share=0.25,
                         long_words=120)
    train = root / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    texts = [*post_texts(4, seed=4), long_post(random.Random(5), LABELS[0], 150)]
    posts = root / "posts.jsonl"
    posts.write_text("".join(json.dumps({"id": f"p{i}", "text": t}) + "\n"
                             for i, t in enumerate(texts)), encoding="utf-8")
    return train, posts


def train(data: Path, base: Path, out: Path) -> int:
    return main(["train", "--data", str(data), "--out", str(out), "--base", str(base),
                 "--mode", "head", "--epochs", "1", "--limit-minutes", "1", "--no-progress",
                 "--max-chunk-tokens", str(WINDOW), "--name", "tiny", "--version", "0.0.1"])


def run(model: Path, posts: Path, db: Path) -> int:
    return main(["run", "--model", str(model), "--source", str(posts), "--sink",
                 f"sqlite:///{db}", "--no-progress", "--explain", "off"])


def stored(db: Path) -> list[tuple[str, str, str, int, int]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, label, model_name, n_chunks, n_tokens "
                            "FROM classifications ORDER BY id").fetchall()


@pytest.mark.parametrize("family", FAMILIES)
def test_train_and_run_on_a_folder_base(family: str, tiny_encoders: Callable[[str], Path],
                                        data: tuple[Path, Path], tmp_path: Path) -> None:
    folder = tiny_encoders(family)
    out = tmp_path / "model"
    assert train(data[0], folder, out) == 0

    m = read_manifest(out)
    assert m.base_model.dir == str(folder.resolve()) and m.base_model.package is None
    assert m.base_model.family == family and m.preprocess.max_chunk_tokens == WINDOW
    assert m.training.budget is not None and m.training.budget.limit_s == 60

    db = tmp_path / "db.sqlite"
    assert run(out, data[1], db) == 0
    rows = stored(db)
    assert [r[0] for r in rows] == [f"p{i}" for i in range(5)]
    assert all(label in LABELS and model == "tiny" and tokens > 0
               for _id, label, model, _chunks, tokens in rows)
    assert rows[-1][3] > 1  # the long post: several windows of the family's tokens


def test_evaluate_register_and_refusal_without_the_base(
        tiny_encoders: Callable[[str], Path], data: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "bases" / "tiny-xlmr"
    shutil.copytree(tiny_encoders("xlm-roberta"), base)
    out = tmp_path / "model"
    assert train(data[0], base, out) == 0
    db = tmp_path / "db.sqlite"
    report = tmp_path / "report"
    evaluate = ["evaluate", "--model", str(out), "--data", str(data[0]), "--split", "train",
                "--report", str(report), "--limit", "8"]
    register = ["model", "--db", f"sqlite:///{db}", "register", str(out)]
    assert main(evaluate) == 0
    assert json.loads((report / "report.json").read_text())["n"] == 8
    assert main(register) == 0
    capsys.readouterr()

    base.rename(tmp_path / "bases" / "moved")  # the base is gone: every command refuses
    for argv in (["run", "--model", str(out), "--source", str(data[1]), "--sink",
                  f"sqlite:///{db}", "--explain", "off"], evaluate, register):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert f"{base}, which does not exist here" in err and "never downloads" in err
