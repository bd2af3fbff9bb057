"""The teachers' pass of distillation: their probabilities, once, before the loop, in budget.

Each teacher is a model artifact, loaded the way `docstream run` loads it
(`model.loader.load_model`: manifest, weight and base hashes checked), with its own
preprocessing and tokenizer (`Preprocessor(manifest.preprocess, load_tokenizer(base))`) and
its own calibrated `DocClassifier` (`build_classifier`, precision "auto" as `run` picks it).
So a teacher's probability for a text is the calibrated document probability `run` would
give, whatever base encoder the student uses. Several teachers: the average of their
probabilities (training/distill.teacher_average).

The pass labels the labelled training texts first, then the unlabelled texts in file order,
in blocks, timing each block. Under `--limit-minutes` it may use at most TEACHER_SHARE of the
time the loop has left when it starts (the post-loop reserve is already set aside):

- the training texts must all be labelled: when the measured rate says they will not fit,
  training is refused in one line before anything is written to OUT;
- the unlabelled texts are labelled while the next block fits that share *and* the loop
  would still have time, at the student's estimated cost per window, for every window it
  has so far; the rest are left out, and the manifest says how many were used.
"""

from __future__ import annotations

import gc
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from docstream.errors import ConfigError
from docstream.model.artifact import ModelManifest, read_manifest, sha256_file
from docstream.model.build import build_classifier
from docstream.model.classify import DocClassifier
from docstream.model.predictor import Predictor
from docstream.model.tokenizer import load_tokenizer
from docstream.preprocess.preprocessor import Prepared, Preprocessor, RawText

from .budget import Budget, PostCosts
from .config import TrainConfig
from .data import text_objects
from .distill import (
    DistillationInfo,
    DistillSet,
    TeacherPassInfo,
    TeacherRef,
    UnlabelledInfo,
    teacher_average,
    texts_sha256,
)
from .modeling import load_artifact
from .prepare import Chunks, PreparedDocs

Note = Callable[[str], None]

#: Under a time limit the teachers' pass may use at most this share of the loop's time.
TEACHER_SHARE = 0.5
#: Documents in the first block (it measures the rate) and in the later ones.
FIRST_BLOCK = 32
BLOCK = 256


@dataclass(frozen=True)
class UnlabelledFile:
    """Texts without labels, read from JSON Lines."""

    path: Path
    sha256: str
    texts: list[RawText]


def read_unlabelled(path: Path, *, text_field: str = "text", title_field: str | None = "title",
                    kind: str | None = None) -> UnlabelledFile:
    """Read `--unlabelled`: one JSON object per line with a string `text_field`; a title and
    a `kind` (news/social) are used when present, as for labelled data. Labels are ignored.

    Raises:
        ConfigError: the file is missing or empty, or a line is not an object with the text.
    """
    texts: list[RawText] = []
    for _, obj, text in text_objects(path, text_field, "unlabelled file"):
        title = obj.get(title_field) if title_field else None
        social = (kind or obj.get("kind") or "news") == "social"
        texts.append(RawText(text=text, title=None if title is None else str(title),
                             social=social))
    if not texts:
        raise ConfigError(f"unlabelled file {path} has no texts")
    return UnlabelledFile(path, sha256_file(path), texts)


def check_teachers(paths: Sequence[Path], labels: Sequence[str], out: Path,
                   unlabelled: Path | None = None) -> list[ModelManifest]:
    """Read each teacher's manifest and check it can teach this student (one line if not);
    check that the unlabelled file exists. Cheap: it runs before any model is loaded.

    Raises:
        ConfigError: a teacher is the --out folder or has another label set; the unlabelled
            file is missing.
        model.errors.ArtifactError: a teacher is not a complete, intact artifact.
    """
    if unlabelled is not None and not unlabelled.is_file():
        raise ConfigError(f"unlabelled file {unlabelled} does not exist")
    manifests = []
    for path in paths:
        if path.resolve() == out.resolve():
            raise ConfigError(f"--teacher {path} is the --out folder; training would overwrite "
                              "it: write the student elsewhere")
        m = read_manifest(path)
        if set(m.labels) != set(labels):
            raise ConfigError(f"teacher {path} ({m.name} {m.version}) has the labels "
                              f"{', '.join(m.labels)} but the student's are {', '.join(labels)}; "
                              "a teacher must have the student's label set")
        manifests.append(m)
    return manifests


class Teacher:
    """One loaded teacher: its artifact, its preprocessing, its calibrated classifier."""

    def __init__(self, path: Path, labels: Sequence[str], device: torch.device) -> None:
        loaded = load_artifact(path)
        self.path = path
        self.manifest = loaded.manifest
        self.preprocessor = Preprocessor(loaded.manifest.preprocess, load_tokenizer(loaded.base))
        self.classifier: DocClassifier[Predictor] = build_classifier(
            loaded.manifest, loaded.module, device=device, precision="auto")
        # the teacher's column of each of the student's labels
        self.columns = [self.manifest.labels.index(lab) for lab in labels]

    def probabilities(self, texts: Sequence[RawText]) -> np.ndarray:
        """Calibrated document probabilities in the student's label order; NaN rows for
        texts the teacher's preprocessing refuses (e.g. empty after its cleaning)."""
        prepared = self.preprocessor.prepare(texts)
        ok = [i for i, p in enumerate(prepared) if isinstance(p, Prepared)]
        out = np.full((len(texts), len(self.columns)), np.nan)
        if ok:
            docs = [prepared[i].chunks for i in ok]  # type: ignore[union-attr]
            out[ok] = self.classifier.probabilities(docs)[:, self.columns]
        return out

    def ref(self) -> TeacherRef:
        m = self.manifest
        return TeacherRef(name=m.name, version=m.version, weights_sha256=m.weights_sha256,
                          path=str(self.path.resolve()), mode=m.mode, base_model=m.base_model.name,
                          temperature=m.temperature, precision=self.classifier.predictor.precision)


def _label(teachers: Sequence[Teacher], texts: Sequence[RawText]) -> np.ndarray:
    return teacher_average([t.probabilities(texts) for t in teachers])


class _Clock:
    """The pass's time, and its allowance under the budget."""

    def __init__(self, budget: Budget | None) -> None:
        self.t0 = time.perf_counter()
        self.budget = budget if budget is not None and budget.limited else None
        self.loop_s = max(self.budget.loop_left(), 0.0) if self.budget else math.inf
        self.allowance_s = TEACHER_SHARE * self.loop_s if self.budget else None
        self.labelling_s = 0.0
        self.docs = 0

    def spent(self) -> float:
        return time.perf_counter() - self.t0

    def per_doc(self) -> float:
        return self.labelling_s / max(self.docs, 1)

    def timed(self, teachers: Sequence[Teacher], texts: Sequence[RawText]) -> np.ndarray:
        t = time.perf_counter()
        probs = _label(teachers, texts)
        self.labelling_s += time.perf_counter() - t
        self.docs += len(texts)
        return probs


def teacher_pass(
    paths: Sequence[Path],
    labels: Sequence[str],
    train: PreparedDocs,
    val: PreparedDocs,
    student: Preprocessor,
    device: torch.device,
    note: Note,
    *,
    temperature: float,
    alpha: float,
    unlabelled: UnlabelledFile | None = None,
    budget: Budget | None = None,
    student_window_s: float = 0.0,
    fixed_unlabelled: int | None = None,
) -> DistillSet:
    """Label the training texts and the unlabelled ones with the teachers, within the budget.

    Args:
        paths: the teacher artifacts (checked by `check_teachers`).
        labels: the student's labels, in its order.
        train: the prepared labelled training documents (their rows' texts are labelled).
        val: the validation documents (unlabelled texts identical to one are left out).
        student: the student's preprocessor (cuts the unlabelled texts into its windows).
        device: where the teachers run.
        note: progress lines.
        temperature, alpha: the KL term's settings (kept in the result).
        unlabelled: the `--unlabelled` texts.
        budget: the run's clock, with the post-loop reserve set.
        student_window_s: the loop's estimated seconds per training window (0: not known).
        fixed_unlabelled: use exactly this many unlabelled texts (--resume: as the
            checkpointed run did), whatever the budget.

    Raises:
        ConfigError: under the time limit, the training texts cannot all be labelled.
    """
    clock = _Clock(budget)
    teachers = [Teacher(p, labels, device) for p in paths]
    load_s = clock.spent()
    n = len(train)
    rows = [r.raw_text() for r in train.rows]
    parts: list[np.ndarray] = []
    if clock.budget is not None and clock.loop_s <= 0:
        raise ConfigError(
            f"time budget: nothing is left for the teachers' pass: start-up, data and the "
            f"reserve for calibration took the whole limit ({clock.budget.elapsed():.0f} s "
            f"used, {clock.budget.reserve_s:.0f} s reserved, of {clock.budget.limit_s:.0f} s); "
            "raise --limit-minutes")
    while clock.docs < n:
        if clock.allowance_s is not None:  # before the first block: the load alone
            projected = clock.spent() + clock.per_doc() * (n - clock.docs)
            if projected > clock.allowance_s:
                raise ConfigError(
                    f"time budget: the teachers' pass over the {n} training texts would take "
                    f"about {projected:.1f} s, more than the {clock.allowance_s:.1f} s it may "
                    f"use ({TEACHER_SHARE:.0%} of the {clock.loop_s:.1f} s left for training); "
                    "raise --limit-minutes, or train on fewer rows (--max-rows) or teachers")
        size = FIRST_BLOCK if not clock.docs else BLOCK
        parts.append(clock.timed(teachers, rows[clock.docs : clock.docs + size]))
    train_probs = np.concatenate(parts) if parts else np.zeros((0, len(labels)))
    with_teacher = int((~np.isnan(train_probs).any(axis=1)).sum())
    note(f"teachers: {len(teachers)} loaded in {load_s:.1f} s; labelled {n} training texts "
         f"in {clock.labelling_s:.1f} s ({n / max(clock.labelling_s, 1e-9):.0f} docs/s)"
         + (f", {n - with_teacher} without a teacher probability" if with_teacher < n else ""))

    u_docs: list[Chunks] = []
    u_parts: list[np.ndarray] = []
    u_info: UnlabelledInfo | None = None
    if unlabelled is not None:
        u_docs, u_parts, u_info = _label_unlabelled(
            teachers, unlabelled, val, student, clock, note,
            train_windows=train.n_chunks(), student_window_s=student_window_s,
            fixed=fixed_unlabelled)
    refs = [t.ref() for t in teachers]
    del teachers
    gc.collect()
    seconds = clock.spent()
    info = DistillationInfo(
        teachers=refs, temperature=temperature, alpha=alpha, train_docs=n,
        train_docs_with_teacher=with_teacher, unlabelled=u_info,
        teacher_pass=TeacherPassInfo(
            seconds=round(seconds, 2), load_s=round(load_s, 2), docs=clock.docs,
            docs_per_s=round(clock.docs / max(clock.labelling_s, 1e-9), 1),
            allowance_s=None if clock.allowance_s is None else round(clock.allowance_s, 1)),
    )
    u_probs = np.concatenate(u_parts) if u_parts else np.zeros((0, len(labels)))
    return DistillSet(train_probs=train_probs, unlabelled_docs=u_docs, unlabelled_probs=u_probs,
                      temperature=temperature, alpha=alpha, info=info)


def _label_unlabelled(
    teachers: Sequence[Teacher],
    file: UnlabelledFile,
    val: PreparedDocs,
    student: Preprocessor,
    clock: _Clock,
    note: Note,
    *,
    train_windows: int,
    student_window_s: float,
    fixed: int | None,
) -> tuple[list[Chunks], list[np.ndarray], UnlabelledInfo]:
    """The unlabelled half of `teacher_pass`: blocks in file order while the budget allows."""
    val_texts = {r.text for r in val.rows}
    candidates = [t for t in file.texts if t.text not in val_texts]
    skipped: Counter[str] = Counter()
    docs: list[Chunks] = []
    parts: list[np.ndarray] = []
    used: list[str] = []
    windows = 0
    start, cut, t_start = 0, False, clock.labelling_s
    while start < len(candidates) and (fixed is None or len(docs) < fixed):
        block = candidates[start : start + BLOCK]
        prepared = student.prepare(block)
        if fixed is not None:  # up to the text that completes the count
            ready = np.cumsum([isinstance(p, Prepared) for p in prepared])
            end = int(np.searchsorted(ready, fixed - len(docs))) + 1
            block, prepared = block[:end], prepared[:end]
        keep = [i for i, p in enumerate(prepared) if isinstance(p, Prepared)]
        block_docs = [prepared[i].chunks for i in keep]  # type: ignore[union-attr]
        if clock.allowance_s is not None and fixed is None and clock.budget is not None:
            teach_s = clock.per_doc() * len(keep)
            need_s = student_window_s * (train_windows + windows + sum(map(len, block_docs)))
            if (clock.spent() + teach_s > clock.allowance_s
                    or clock.budget.loop_left() - teach_s < need_s):
                cut = True
                break
        start += len(block)
        skipped.update(p.reason for p in prepared if not isinstance(p, Prepared))
        probs = clock.timed(teachers, [block[i] for i in keep]) if keep else None
        for j, i in enumerate(keep):
            if probs is not None and not np.isnan(probs[j]).any():
                docs.append(block_docs[j])
                parts.append(probs[j : j + 1])
                used.append(block[i].text)
                windows += len(block_docs[j])
            else:
                skipped["no_teacher_probability"] += 1
    info = UnlabelledInfo(
        file=file.path.name, file_sha256=file.sha256, texts=len(file.texts), used=len(docs),
        windows=windows, sha256=texts_sha256(used),
        val_duplicates=len(file.texts) - len(candidates), skipped=dict(skipped),
        cut_by_budget=cut)
    why = ""
    if cut:
        why = (f"; the time limit stopped the pass (it may use {clock.allowance_s:.0f} s, and "
               f"the loop needs about {student_window_s * 1000:.1f} ms per window)")
    note(f"teachers: labelled {len(docs)} of {len(file.texts)} unlabelled texts ({windows} "
         f"windows) in {clock.labelling_s - t_start:.1f} s{why}")
    return docs, parts, info


def student_window_seconds(costs: PostCosts | None, config: TrainConfig, precision: str) -> float:
    """The loop's estimated seconds per training window, from the measured forward cost:
    head mode encodes each window once; LoRA and full fine-tuning run a forward and a
    backward pass (about 3 forwards) per window and epoch. 0 without measured costs."""
    if costs is None:
        return 0.0
    forward = costs.window_s.get(precision, max(costs.window_s.values(), default=0.0))
    return forward if config.mode == "head" else 3.0 * forward * (config.epochs or 1)


def prepare_distillation(
    config: TrainConfig,
    labels: Sequence[str],
    train: PreparedDocs,
    val: PreparedDocs,
    student: Preprocessor,
    device: torch.device,
    note: Note,
    *,
    budget: Budget | None = None,
    costs: PostCosts | None = None,
    precision: str = "fp32",
    resume: dict[str, Any] | None = None,
) -> DistillSet | None:
    """The teachers' pass of a run with `--teacher` (None without): checks, then labels.

    With --resume, the unlabelled texts are the ones the checkpointed run used (their count
    is in the checkpoint), so that the loop's batches are the same.
    """
    if not config.teachers:
        return None
    unlabelled = None
    if config.unlabelled is not None:
        unlabelled = read_unlabelled(config.unlabelled, text_field=config.text_field,
                                     title_field=config.title_field, kind=config.kind)
    fixed = None
    if resume is not None:
        extra = resume.get("extra") or {}
        fixed = extra.get("unlabelled_used")
        was = extra.get("teacher_weights")
        now = [read_manifest(t).weights_sha256 for t in config.teachers]
        if was is not None and was != now:
            raise ConfigError(f"cannot resume from {resume['path']}: a teacher's weights changed "
                              "since the checkpoint; drop --resume to start afresh")
    return teacher_pass(
        config.teachers, labels, train, val, student, device, note,
        temperature=config.distill_temperature, alpha=config.distill_alpha,
        unlabelled=unlabelled, budget=budget,
        student_window_s=student_window_seconds(costs, config, precision),
        fixed_unlabelled=fixed)
