"""Distillation: the loss against the teachers' probabilities, the targets, and the record.

`docstream train --teacher ARTIFACT [--teacher ARTIFACT …] [--unlabelled FILE]` trains a
student on the teachers' calibrated probabilities as well as on the labels. The teachers'
pass (training/teachers.py) runs once, before the loop, and leaves a `DistillSet` here.

Targets are per document. The student's examples are windows, each with its document's
label (`PreparedDocs.chunk_examples`); each window also gets its document's teacher
probability: what `docstream run` on the teacher says about the whole document (its own
preprocessing and tokenizer, its windows aggregated by its own rule, its fitted
temperature), averaged over the teachers. A teacher's windows need not line up with the
student's (another tokenizer, another window size), and a window of filler carries its
document's label anyway, so the soft target follows the hard one.

The loss of a window (`distill_loss`), with the teachers' probability p, the distillation
temperature T and the weight alpha:

- soft target q = softmax(log p / T), the student's s_T = softmax(z / T);
- KL term T² · KL(q ‖ s_T) (T² keeps its gradients the size of the cross-entropy's);
- labelled window: alpha · KL + (1 − alpha) · CE(z, label);
- unlabelled window (label −1): alpha · KL only;
- a window whose document no teacher could prepare (p is NaN): CE only.

A batch's loss is the mean over its windows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from .prepare import Chunks, PreparedDocs

#: The label of an unlabelled example.
UNLABELLED = -1


def soften(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Probabilities at `temperature`: softmax(log p / T), as if their logits were divided by T.

    Zero probabilities stay zero (log 0 = -inf); rows must sum to 1.
    """
    logp = torch.log(probs.clamp(min=0.0))
    return torch.softmax(logp / temperature, dim=-1)


def distill_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_probs: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """Mean loss of a batch: alpha · T² · KL(teacher_T ‖ student_T) + (1 − alpha) · CE.

    Args:
        logits: the student's logits, (n, K), float32.
        labels: class index per row; `UNLABELLED` (−1) for a text without a label, which
            gets the KL term only.
        teacher_probs: the teachers' probabilities per row, (n, K); a row of NaN means no
            teacher probability (that row gets the cross-entropy only).
        temperature: T > 0 of the KL term (both sides are softened by it).
        alpha: weight of the KL term, in [0, 1].

    Example:
        >>> z = torch.tensor([[2.0, 0.0]])
        >>> p = torch.tensor([[0.5, 0.5]])
        >>> bool(distill_loss(z, torch.tensor([0]), p, 1.0, 0.0) == F.cross_entropy(z, torch.tensor([0])))
        True
    """
    labelled = labels != UNLABELLED
    has_teacher = ~torch.isnan(teacher_probs).any(dim=-1)
    if bool((~labelled & ~has_teacher).any()):
        raise ValueError("a row has neither a label nor a teacher probability")
    safe = torch.where(has_teacher[:, None], teacher_probs, torch.full_like(teacher_probs, 0.5))
    target = soften(safe, temperature)
    log_student = F.log_softmax(logits / temperature, dim=-1)
    # KL(q || s) = sum q (log q - log s); 0 log 0 = 0 (xlogy)
    kl = (torch.xlogy(target, target) - target * log_student).sum(dim=-1) * temperature**2
    ce = F.cross_entropy(logits, labels.clamp(min=0), reduction="none")
    loss = torch.where(
        has_teacher,
        alpha * kl + (1.0 - alpha) * torch.where(labelled, ce, torch.zeros_like(ce)),
        ce,
    )
    return loss.mean()


def texts_sha256(texts: Iterable[str]) -> str:
    """sha256 over texts, each as a JSON string followed by a newline (unambiguous)."""
    h = hashlib.sha256()
    for text in texts:
        h.update(json.dumps(text, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


class TeacherRef(BaseModel):
    """A teacher as the student's manifest records it."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    name: str
    version: str
    weights_sha256: str
    path: str = Field(description="the artifact directory, absolute")
    mode: str
    base_model: str = Field(description="the teacher's base encoder's name")
    temperature: float = Field(description="the teacher's own fitted temperature (calibration)")
    precision: str = Field(description="the numeric mode its probabilities were computed in")


class UnlabelledInfo(BaseModel):
    """The unlabelled texts: which file, how many were read and how many the student used.

    The used texts are the first `used` usable ones in file order; `sha256` is over them
    (`texts_sha256`), `file_sha256` over the file's bytes.
    """

    model_config = ConfigDict(frozen=True)

    file: str
    file_sha256: str
    texts: int = Field(description="texts in the file")
    used: int = Field(description="texts trained on, with their teachers' probabilities")
    windows: int = Field(description="the student's windows of the used texts")
    sha256: str = Field(description="sha256 of the used texts (training/distill.texts_sha256)")
    val_duplicates: int = Field(description="texts left out: identical to a validation text")
    skipped: dict[str, int] = Field(default_factory=dict,
                                    description="texts left out, per reason")
    cut_by_budget: bool = Field(description="the time limit stopped the teachers' pass early")


class TeacherPassInfo(BaseModel):
    """What the teachers' pass cost (it runs once, before the loop, inside the budget)."""

    model_config = ConfigDict(frozen=True)

    seconds: float
    load_s: float
    docs: int = Field(description="documents labelled by the teachers (training + unlabelled)")
    docs_per_s: float
    allowance_s: float | None = Field(
        default=None, description="the most the pass could take under the time limit")


class DistillationInfo(BaseModel):
    """The manifest's `training.distillation`."""

    model_config = ConfigDict(frozen=True)

    teachers: list[TeacherRef]
    temperature: float
    alpha: float
    targets: Literal["document"] = Field(
        default="document",
        description="each student window's target is its document's teacher probability")
    train_docs: int = Field(description="labelled training documents")
    train_docs_with_teacher: int = Field(
        description="labelled documents with a teacher probability (the others: labels only)")
    unlabelled: UnlabelledInfo | None = None
    teacher_pass: TeacherPassInfo


@dataclass(frozen=True)
class DistillSet:
    """The teachers' probabilities, cached for the loop.

    Attributes:
        train_probs: per labelled training document (in `PreparedDocs` order), the
            teachers' averaged calibrated probabilities in the student's label order;
            NaN rows where no teacher could prepare the document.
        unlabelled_docs: the student's windows of each used unlabelled text.
        unlabelled_probs: the teachers' probabilities of those texts (no NaN rows).
        temperature: T of the KL term.
        alpha: weight of the KL term.
        info: the manifest's record.
    """

    train_probs: np.ndarray
    unlabelled_docs: list[Chunks]
    unlabelled_probs: np.ndarray
    temperature: float
    alpha: float
    info: DistillationInfo

    def examples(self, train: PreparedDocs) -> tuple[list[list[int]], np.ndarray, np.ndarray,
                                                     int]:
        """The loop's examples: every window with its label and its document's teacher
        probability; the labelled documents' windows first, then the unlabelled ones.

        Returns:
            (windows, labels with `UNLABELLED` for unlabelled texts, teacher probabilities
            (n, K) float32, number of labelled windows)
        """
        chunks, labels = train.chunk_examples()
        per_doc = [len(d) for d in train.docs]
        probs = np.repeat(self.train_probs, per_doc, axis=0)
        n_labelled = len(chunks)
        u_chunks = [c for d in self.unlabelled_docs for c in d]
        u_probs = np.repeat(self.unlabelled_probs, [len(d) for d in self.unlabelled_docs],
                            axis=0).reshape(len(u_chunks), self.train_probs.shape[1])
        all_labels = np.concatenate([labels, np.full(len(u_chunks), UNLABELLED, np.int64)])
        all_probs = np.concatenate([probs, u_probs]).astype(np.float32)
        return [*chunks, *u_chunks], all_labels, all_probs, n_labelled


def describe_distillation(info: DistillationInfo) -> str:
    """One line for the summary: teachers, T, alpha, what they labelled."""
    names = ", ".join(f"{t.name} {t.version}" for t in info.teachers)
    text = (f"distilled from {names} (T {info.temperature:g}, alpha {info.alpha:g}, "
            f"document targets) on {info.train_docs_with_teacher} of {info.train_docs} "
            f"training texts")
    u = info.unlabelled
    if u is not None:
        text += f" and {u.used} of {u.texts} unlabelled texts"
        if u.cut_by_budget:
            text += " (the time limit cut the teachers' pass)"
    p = info.teacher_pass
    return text + f"; teachers' pass {p.seconds:.1f} s ({p.docs_per_s:.0f} docs/s)"


def teacher_average(per_teacher: Sequence[np.ndarray]) -> np.ndarray:
    """The ensemble's probabilities: per row, the mean over the teachers that have one
    (NaN rows: none has)."""
    stack = np.stack(per_teacher)  # (teachers, n, K)
    have = ~np.isnan(stack).any(axis=-1)  # (teachers, n)
    total = np.where(have[..., None], stack, 0.0).sum(axis=0)
    count = have.sum(axis=0)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
