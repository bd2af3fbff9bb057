"""`docstream train --teacher … --unlabelled …` end to end on tiny random encoders: two
teachers on other bases than the student's (an ensemble), unlabelled texts, the manifest's
record, `docstream run` on the student, and the one-line refusals.

The encoders are tiny and random (tests/tiny_encoders.py), so the predictions mean nothing:
the tests check the plumbing: that each teacher reads the texts with its own tokenizer, that
the student trains on the training and unlabelled texts, and what the manifest records.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from docstream.cli import main
from docstream.model.artifact import read_manifest
from docstream.training.distill import DistillationInfo, texts_sha256
from tests.news_posts import LABELS, labelled_rows, long_post, post_texts
from tests.tiny_encoders import head_artifact

WINDOW = 64


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Labelled rows (32, some long), unlabelled texts (one long, one empty after cleaning)
    and posts to classify."""
    root = tmp_path_factory.mktemp("distill-data")
    rows = labelled_rows(train_per_label=8, test_per_label=0, seed=7, long_share=0.25,
                         long_words=120)
    train = root / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    texts = [*post_texts(20, seed=8), long_post(random.Random(9), LABELS[2], 150), "<b> </b>"]
    unlabelled = root / "unlabelled.jsonl"
    unlabelled.write_text("".join(json.dumps({"id": f"u{i}", "text": t}) + "\n"
                                  for i, t in enumerate(texts)), encoding="utf-8")
    posts = root / "posts.jsonl"
    posts.write_text("".join(json.dumps({"id": f"p{i}", "text": t}) + "\n"
                             for i, t in enumerate(post_texts(3, seed=10))), encoding="utf-8")
    return {"train": train, "unlabelled": unlabelled, "posts": posts}


def train(data: Path, base: Path, out: Path, *extra: str) -> int:
    """`docstream train` in this process, without a time limit: its clock would start at the
    test session's start (tests/training/test_distill.py tests the teachers' budget)."""
    return main(["train", "--data", str(data), "--out", str(out), "--base", str(base),
                 "--mode", "head", "--epochs", "2", "--limit-minutes", "0", "--no-progress",
                 "--max-chunk-tokens", str(WINDOW), "--name", out.name, "--version", "0.0.1",
                 *extra])


def test_student_learns_from_two_teachers_and_unlabelled_texts(
        tiny_encoders: Callable[[str], Path], files: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    teachers = [tmp_path / "teacher-bert", tmp_path / "teacher-xlmr"]
    for teacher, family in zip(teachers, ("bert", "xlm-roberta"), strict=True):
        assert train(files["train"], tiny_encoders(family), teacher) == 0
    capsys.readouterr()

    student = tmp_path / "student"
    assert train(files["train"], tiny_encoders("roberta"), student,
                 "--teacher", str(teachers[0]), "--teacher", str(teachers[1]),
                 "--unlabelled", str(files["unlabelled"]),
                 "--distill-temperature", "3", "--distill-alpha", "0.7") == 0
    summary = capsys.readouterr().out
    assert "distillation: distilled from teacher-bert 0.0.1, teacher-xlmr 0.0.1" in summary
    assert "21 of 22 unlabelled texts" in summary

    m = read_manifest(student)
    info = DistillationInfo.model_validate(m.training.distillation)
    assert [t.name for t in info.teachers] == ["teacher-bert", "teacher-xlmr"]
    for ref, path in zip(info.teachers, teachers, strict=True):
        t = read_manifest(path)
        assert ref.weights_sha256 == t.weights_sha256 and ref.version == "0.0.1"
        assert ref.path == str(path.resolve()) and ref.temperature == t.temperature
    assert info.teachers[1].base_model == "xlm-roberta"  # another base than the student's
    assert (info.temperature, info.alpha, info.targets) == (3.0, 0.7, "document")
    assert info.train_docs == info.train_docs_with_teacher == m.training.rows["train"]
    u = info.unlabelled
    assert u is not None and u.texts == 22 and u.used == 21 and not u.cut_by_budget
    assert u.skipped == {"empty_after_cleaning": 1} and u.windows > 21  # the long text
    texts = [json.loads(line)["text"] for line in files["unlabelled"].read_text().splitlines()]
    assert u.sha256 == texts_sha256(texts[:21]) and u.file == "unlabelled.jsonl"
    assert info.teacher_pass.docs == info.train_docs + 21 and info.teacher_pass.seconds > 0
    budget = m.training.budget
    assert budget is not None and budget.teachers_s is not None and budget.limit_s is None
    chunks = budget.training_chunks
    assert chunks["used"] == chunks["of"] == m.training.rows["train_chunks"] + u.windows
    assert "teachers" not in m.training.hyperparameters

    db = tmp_path / "db.sqlite"
    assert main(["run", "--model", str(student), "--source", str(files["posts"]), "--sink",
                 f"sqlite:///{db}", "--no-progress", "--explain", "off"]) == 0
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT label, model_name FROM classifications").fetchall()
    assert len(rows) == 3 and all(lab in LABELS and name == "student" for lab, name in rows)


def test_refusals_in_one_line(tiny_encoders: Callable[[str], Path], files: dict[str, Path],
                              tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tiny_encoders("bert")
    wrong = head_artifact(base, tmp_path / "ab-teacher", name="ab")  # labels a, b
    out = tmp_path / "student"
    cases = [
        (["--teacher", str(wrong)],
         f"teacher {wrong} (ab 0.0.1) has the labels a, b but the student's are "
         f"{', '.join(sorted(LABELS))}"),
        (["--unlabelled", str(files["unlabelled"])], "--unlabelled needs --teacher"),
        (["--teacher", str(out)], "is the --out folder"),
        (["--teacher", str(wrong), "--unlabelled", str(tmp_path / "none.jsonl")],
         "unlabelled file"),
        (["--teacher", str(tmp_path / "missing")], "is not a directory"),
    ]
    out.mkdir()
    for extra, expected in cases:
        assert train(files["train"], base, out, *extra) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()  # progress notes, then the error
        assert err[-1].startswith("docstream train: error: ") and expected in err[-1], err
        assert not any("Traceback" in line for line in err)
    assert not (out / "manifest.json").exists()
