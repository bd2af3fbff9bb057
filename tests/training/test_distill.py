"""Distillation's loss, targets and settings (training/distill.py, training/config.py), and
the teachers' pass under a time limit (training/teachers.py) on a tiny random teacher."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from docstream.errors import ConfigError
from docstream.model.encoder import resolve_base
from docstream.preprocess.config import PreprocessConfig
from docstream.preprocess.preprocessor import Preprocessor, RawText
from docstream.training.budget import Budget
from docstream.training.config import TrainConfig
from docstream.training.data import Row
from docstream.training.distill import (
    UNLABELLED,
    DistillationInfo,
    DistillSet,
    TeacherPassInfo,
    distill_loss,
    soften,
    teacher_average,
    texts_sha256,
)
from docstream.training.prepare import PreparedDocs, make_preprocessor
from docstream.training.teachers import UnlabelledFile, teacher_pass

LOGITS = [1.0, 0.0, -1.0]
TEACHER = [0.7, 0.2, 0.1]


def _softmax(z: list[float]) -> list[float]:
    e = [math.exp(x) for x in z]
    return [x / sum(e) for x in e]


def _hand_kl(z: list[float], p: list[float], t: float) -> float:
    """T² · KL(q ‖ s): q ∝ p^(1/T), s = softmax(z / T), written out term by term."""
    q = [x ** (1 / t) for x in p]
    q = [x / sum(q) for x in q]
    s = _softmax([x / t for x in z])
    return t * t * sum(qi * math.log(qi / si) for qi, si in zip(q, s, strict=True))


def _loss(labels: list[int], teacher: list[list[float]], t: float, alpha: float,
          logits: list[list[float]] | None = None) -> float:
    z = torch.tensor(logits or [LOGITS] * len(labels), dtype=torch.float64)
    p = torch.tensor(teacher, dtype=torch.float64)
    return float(distill_loss(z, torch.tensor(labels), p, t, alpha))


def test_kl_with_temperature_matches_a_hand_computation() -> None:
    for t in (1.0, 2.0, 4.0):
        assert _loss([0], [TEACHER], t, alpha=1.0) == pytest.approx(_hand_kl(LOGITS, TEACHER, t),
                                                                    rel=1e-5)
    # alpha mixes: alpha · KL + (1 − alpha) · CE
    ce = -math.log(_softmax(LOGITS)[2])
    expected = 0.3 * _hand_kl(LOGITS, TEACHER, 2.0) + 0.7 * ce
    assert _loss([2], [TEACHER], 2.0, alpha=0.3) == pytest.approx(expected, rel=1e-5)


def test_soften_is_softmax_of_log_probabilities_over_t() -> None:
    p = torch.tensor([TEACHER])
    assert torch.allclose(soften(p, 1.0), p.double().float(), atol=1e-6)
    flat = soften(p, 1e6)  # a huge T flattens
    assert torch.allclose(flat, torch.full((1, 3), 1 / 3), atol=1e-4)


def test_alpha_zero_is_pure_cross_entropy() -> None:
    z = torch.tensor([LOGITS, [0.5, 2.0, 0.0]])
    y = torch.tensor([0, 1])
    loss = distill_loss(z, y, torch.tensor([TEACHER, [0.1, 0.1, 0.8]]), 2.0, 0.0)
    assert float(loss) == pytest.approx(float(F.cross_entropy(z, y)), rel=1e-6)


def test_unlabelled_rows_contribute_the_kl_term_only() -> None:
    kl = _hand_kl(LOGITS, TEACHER, 2.0)
    assert _loss([UNLABELLED], [TEACHER], 2.0, alpha=0.4) == pytest.approx(0.4 * kl, rel=1e-5)
    # whatever the logits say about any class, no cross-entropy: only the KL changes with z
    z2 = [3.0, -2.0, 0.5]
    assert _loss([UNLABELLED], [TEACHER], 2.0, 0.4, [z2]) == pytest.approx(
        0.4 * _hand_kl(z2, TEACHER, 2.0), rel=1e-5)
    # a batch is the mean of its rows: one labelled, one unlabelled
    ce = -math.log(_softmax(LOGITS)[0])
    mixed = _loss([0, UNLABELLED], [TEACHER, TEACHER], 2.0, alpha=0.4)
    assert mixed == pytest.approx(((0.4 * kl + 0.6 * ce) + 0.4 * kl) / 2, rel=1e-5)


def test_rows_without_a_teacher_probability_get_cross_entropy_only() -> None:
    nan = [math.nan] * 3
    ce = -math.log(_softmax(LOGITS)[1])
    assert _loss([1], [nan], 2.0, alpha=0.9) == pytest.approx(ce, rel=1e-6)
    with pytest.raises(ValueError, match="neither a label nor a teacher"):
        _loss([UNLABELLED], [nan], 2.0, alpha=0.5)


def test_gradients_flow_and_match_the_soft_target_at_t1() -> None:
    z = torch.tensor([LOGITS], requires_grad=True)
    distill_loss(z, torch.tensor([UNLABELLED]), torch.tensor([TEACHER]), 1.0, 1.0).backward()
    # d KL(p ‖ softmax z) / dz = softmax(z) − p
    assert torch.allclose(z.grad, torch.tensor([_softmax(LOGITS)]) - torch.tensor([TEACHER]),
                          atol=1e-6)


def test_teacher_average_skips_teachers_without_a_probability() -> None:
    a = np.array([[0.8, 0.2], [np.nan, np.nan], [np.nan, np.nan]])
    b = np.array([[0.4, 0.6], [0.3, 0.7], [np.nan, np.nan]])
    avg = teacher_average([a, b])
    assert np.allclose(avg[0], [0.6, 0.4]) and np.allclose(avg[1], [0.3, 0.7])
    assert np.isnan(avg[2]).all()


def _info() -> DistillationInfo:
    return DistillationInfo(teachers=[], temperature=2.0, alpha=0.5, train_docs=2,
                            train_docs_with_teacher=2,
                            teacher_pass=TeacherPassInfo(seconds=0, load_s=0, docs=2,
                                                         docs_per_s=1))


def test_each_window_gets_its_documents_teacher_probability() -> None:
    train = PreparedDocs(rows=[], docs=[[[1, 2], [3]], [[4]]], labels=np.array([1, 0]))
    ds = DistillSet(train_probs=np.array([[0.1, 0.9], [0.8, 0.2]]),
                    unlabelled_docs=[[[5], [6], [7]]], unlabelled_probs=np.array([[0.5, 0.5]]),
                    temperature=2.0, alpha=0.5, info=_info())
    chunks, labels, probs, n_labelled = ds.examples(train)
    assert chunks == [[1, 2], [3], [4], [5], [6], [7]] and n_labelled == 3
    assert labels.tolist() == [1, 1, 0, UNLABELLED, UNLABELLED, UNLABELLED]
    assert np.allclose(probs, [[0.1, 0.9]] * 2 + [[0.8, 0.2]] + [[0.5, 0.5]] * 3)


def test_texts_sha256_is_order_and_boundary_sensitive() -> None:
    assert texts_sha256(["a", "b"]) != texts_sha256(["b", "a"])
    assert texts_sha256(["a\nb"]) != texts_sha256(["a", "b"])


def test_settings_are_validated(tmp_path: Path) -> None:
    base = {"data": tmp_path / "d.jsonl", "out": tmp_path / "out"}
    t = tmp_path / "teacher"
    with pytest.raises(ValidationError, match="--unlabelled needs --teacher"):
        TrainConfig.model_validate({**base, "unlabelled": tmp_path / "u.jsonl"})
    with pytest.raises(ValidationError, match="alpha 0"):
        TrainConfig.model_validate({**base, "teachers": [t], "unlabelled": tmp_path / "u.jsonl",
                                    "distill_alpha": 0.0})
    with pytest.raises(ValidationError, match="given twice"):
        TrainConfig.model_validate({**base, "teachers": [t, tmp_path / "." / "teacher"]})
    for bad in ({"distill_alpha": 1.5}, {"distill_temperature": 0.0}):
        with pytest.raises(ValidationError):
            TrainConfig.model_validate({**base, "teachers": [t], **bad})
    config = TrainConfig.model_validate({**base, "teachers": [t], "distill_alpha": 0.2})
    assert not {"teachers", "distill_alpha"} & set(config.hyperparameters())


@pytest.fixture(scope="module")
def tiny_teacher(tiny_encoders: Callable[[str], Path],
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-head artifact over the tiny BERT (labels a, b): enough to label texts."""
    from tests.tiny_encoders import head_artifact

    return head_artifact(tiny_encoders("bert"), tmp_path_factory.mktemp("teacher") / "t")


def _docs(n: int) -> tuple[PreparedDocs, list[str]]:
    """n labelled documents (the teachers read their rows' texts; the windows are dummies)."""
    texts = [f"Story number {i} about markets and games. It goes on." for i in range(n)]
    rows = [Row(line=i + 1, text=t, label="a", split="train") for i, t in enumerate(texts)]
    return PreparedDocs(rows=rows, docs=[[[1, 2, 3]] for _ in rows],
                        labels=np.zeros(n, dtype=np.int64)), texts


def _student(tiny_encoders: Callable[[str], Path]) -> Preprocessor:
    """The student's preprocessing: another family's tokenizer than the teacher's."""
    return make_preprocessor(PreprocessConfig(), resolve_base(tiny_encoders("roberta")))


def test_teacher_pass_is_refused_when_the_training_texts_do_not_fit(
        tiny_teacher: Path, tiny_encoders: Callable[[str], Path]) -> None:
    train, _ = _docs(80)
    budget = Budget(limit_s=60.0, started=0.0, clock=lambda: 59.99)  # 10 ms left
    with pytest.raises(ConfigError, match="teachers' pass over the 80 training texts") as e:
        teacher_pass([tiny_teacher], ["a", "b"], train, train, _student(tiny_encoders),
                     torch.device("cpu"), lambda _m: None, temperature=2.0, alpha=0.5,
                     budget=budget)
    assert "\n" not in str(e.value) and "--limit-minutes" in str(e.value)
    spent = Budget(limit_s=60.0, started=0.0, clock=lambda: 61.0)  # setup took it all
    with pytest.raises(ConfigError, match="nothing is left for the teachers' pass"):
        teacher_pass([tiny_teacher], ["a", "b"], train, train, _student(tiny_encoders),
                     torch.device("cpu"), lambda _m: None, temperature=2.0, alpha=0.5,
                     budget=spent)


def test_teacher_pass_labels_unlabelled_texts_while_the_loop_can_afford_them(
        tiny_teacher: Path, tiny_encoders: Callable[[str], Path]) -> None:
    train, texts = _docs(4)
    extra = [f"An unlabelled report {i} on the weather and the league." for i in range(300)]
    file = UnlabelledFile(Path("u.jsonl"), "0" * 64,
                          [*(_raw(t) for t in extra), _raw(texts[0]), _raw("<p> </p>")])
    common = dict(temperature=2.0, alpha=0.5, unlabelled=file)
    student, cpu = _student(tiny_encoders), torch.device("cpu")
    val, _ = _docs(1)  # its text is texts[0]: left out of the unlabelled texts
    ds = teacher_pass([tiny_teacher], ["b", "a"], train, val, student, cpu, lambda _m: None,
                      **common)
    u = ds.info.unlabelled
    assert u is not None and u.used == 300 and not u.cut_by_budget
    assert u.val_duplicates == 1 and u.skipped == {"empty_after_cleaning": 1}
    assert u.sha256 == texts_sha256(extra) and u.windows == 300
    assert ds.train_probs.shape == (4, 2) and ds.unlabelled_probs.shape == (300, 2)
    assert np.allclose(ds.unlabelled_probs.sum(axis=1), 1.0)
    assert ds.info.teachers[0].name == "tiny" and ds.info.teacher_pass.docs == 304

    # a loop that needs 3 h per window cannot afford any: none are labelled
    roomy = Budget(limit_s=1e6, started=time.perf_counter())
    cut = teacher_pass([tiny_teacher], ["a", "b"], train, val, student, cpu, lambda _m: None,
                       budget=roomy, student_window_s=1e4, **common)
    assert cut.info.unlabelled is not None and cut.info.unlabelled.used == 0
    assert cut.info.unlabelled.cut_by_budget and cut.train_probs.shape == (4, 2)

    # --resume: exactly as many as the checkpointed run used, whatever the budget
    again = teacher_pass([tiny_teacher], ["a", "b"], train, val, student, cpu, lambda _m: None,
                         budget=roomy, student_window_s=1e4, fixed_unlabelled=7,
                         **common)
    assert again.info.unlabelled is not None and again.info.unlabelled.used == 7
    assert again.info.unlabelled.sha256 == texts_sha256(extra[:7])


def _raw(text: str) -> RawText:
    return RawText(text=text)
