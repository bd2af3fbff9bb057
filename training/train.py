"""`docstream train`: fit a model on chunks, calibrate it, and write the artifact.

Steps:
1. read the data; validation = the `val` split if present, else a seeded, stratified
   fraction of train;
2. prepare every document with `Preprocessor.prepare` (the `run` path); each chunk of a
   training document becomes an example with the document's label;
3. with a time limit, measure what the work after the loop will cost and reserve time for
   it (budget.py, costs.py); with `--teacher`, run the teachers over the training (and
   unlabelled) texts once, within the budget (teachers.py, distill.py); leave a provisional
   manifest in OUT (output.py);
4. train (head / lora / full) with AdamW and linear warmup/decay over length-bucketed
   token-budget batches, validating each epoch through `DocClassifier`, with early
   stopping, per-epoch checkpoints, and a stop (with a checkpoint) before a step that would
   eat into the reserve;
5. write the weights, load them back with `model.loader.load_model` exactly as `run` does,
   fit the temperature on validation (a stratified subset when the budget is short), check
   the other precisions against fp32, and write the final manifest last, atomically.

Long module: one training run, read top to bottom; the loop, resume and finalize steps share
the run's state (`_Loop`, `TrainState`), and the reusable parts already live in modeling,
batches, checkpoint and predictors.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from docstream.errors import ConfigError
from docstream.model.artifact import (
    BaseModelRef,
    BudgetInfo,
    ModelManifest,
    TrainingInfo,
)
from docstream.model.build import build_classifier
from docstream.model.calibration import expected_calibration_error, fit_temperature_fn, nll
from docstream.model.classifier import TextClassifier, load_base_encoder
from docstream.model.classify import ClassifierSpec, DocClassifier, LogitsProvider
from docstream.model.encoder import BaseEncoder, resolve_base
from docstream.model.predictor import Precision, pick_device
from docstream.model.tensors import autocast_for, pad_batch

from . import checkpoint as ckpt
from . import output
from .batches import epoch_batches, fixed_batches, sample_windows
from .budget import (
    POST_SHARE,
    Budget,
    PostCosts,
    PostPlan,
    StepTimer,
    describe,
    plan_post,
    stratified_indices,
)
from .config import TrainConfig
from .costs import measure_post_costs, write_seconds
from .data import DataFile, holdout, label_order, read_data, sample_rows
from .distill import DistillSet, describe_distillation, distill_loss
from .machine import configure_threads, train_precision
from .metrics import summary
from .modeling import (
    build_trainable,
    embed_chunks,
    load_artifact,
    load_trainable_state,
    lora_settings,
    lora_targets,
    param_groups,
    save_weights,
    trainable_state,
)
from .predictors import CachedVectorPredictor, FixedLogits
from .prepare import PreparedDocs, make_preprocessor, prepare_rows
from .progress import TrainProgress
from .teachers import check_teachers, prepare_distillation

__all__ = ["TrainConfig", "TrainResult", "train"]

Note = Callable[[str], None]


@dataclass(frozen=True)
class TrainData:
    """The prepared training and validation documents."""

    file: DataFile
    labels: list[str]
    train: PreparedDocs
    val: PreparedDocs
    val_source: str


@dataclass(frozen=True)
class TrainResult:
    """What `train` produced."""

    out: Path
    manifest: ModelManifest
    history: list[dict[str, Any]]
    seconds: float
    budget: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch, and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def load_training_data(config: TrainConfig, note: Note,
                       base: BaseEncoder | None = None) -> TrainData:
    """Read, split and prepare the data of a run (with `base`'s tokenizer; default: the
    bundled MiniLM's)."""
    t0 = time.perf_counter()
    file = read_data(
        config.data,
        text_field=config.text_field,
        label_field=config.label_field,
        split_field=config.split_field,
        title_field=config.title_field,
        kind=config.kind,
    )
    rows = file.split(config.train_split)
    if file.has_split(config.val_split):
        train_rows = sample_rows(rows, config.max_rows, config.seed)
        val_rows = sample_rows(file.split(config.val_split), config.max_rows, config.seed)
        val_source = f"split {config.val_split!r}"
    else:
        rows = sample_rows(rows, config.max_rows, config.seed)
        train_rows, val_rows = holdout(rows, config.val_fraction, config.seed)
        val_source = (
            f"{config.val_fraction:g} of {config.train_split!r}, stratified, seed {config.seed}"
        )
    labels = label_order(train_rows, config.labels)
    unknown = sorted({r.label for r in val_rows} - set(labels))
    if unknown:
        raise ConfigError(f"validation rows have labels the training rows lack: {unknown}")
    pre = make_preprocessor(config.preprocess, base)
    train = prepare_rows(train_rows, labels, pre)
    val = prepare_rows(val_rows, labels, pre)
    if len(train) == 0 or len(val) == 0:
        raise ConfigError("no training or validation document survived preprocessing")
    skipped = sum(train.errors.values()) + sum(val.errors.values())
    note(
        f"data: {len(train)} train docs ({train.n_chunks()} chunks), {len(val)} val docs "
        f"({val_source}), {len(labels)} labels, {skipped} skipped; "
        f"prepared in {time.perf_counter() - t0:.1f} s"
    )
    return TrainData(file, labels, train, val, val_source)


def draft_manifest(config: TrainConfig, labels: list[str], base: BaseEncoder,
                   targets: Sequence[str] | None = None) -> ModelManifest:
    """The manifest before metrics: the base encoder (located, hashed) and the settings.

    `targets`: the LoRA layers (modeling.lora_targets), for mode "lora".
    """
    return ModelManifest(
        name=config.name,
        version=config.version,
        mode=config.mode,
        labels=labels,
        base_model=BaseModelRef.of(base),
        preprocess=config.preprocess,
        review_threshold=config.review_threshold,
        lora=lora_settings(config, targets or []) if config.mode == "lora" else None,
    )


def validation_spec(config: TrainConfig, labels: list[str]) -> ClassifierSpec:
    """What `DocClassifier` needs while training: the draft manifest's settings (T = 1)."""
    return ClassifierSpec(labels=tuple(labels), aggregate=config.preprocess.aggregate,
                          review_threshold=config.review_threshold)


def lr_lambda(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """Linear warmup to 1 over `warmup_ratio` of the steps, then linear decay to 0."""
    warmup = max(1, math.ceil(total_steps * warmup_ratio)) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def doc_metrics(clf: DocClassifier[LogitsProvider], docs: PreparedDocs) -> dict[str, float]:
    """Accuracy, macro-F1, NLL and ECE of calibrated document predictions."""
    probs = clf.probabilities(docs.docs)
    out = summary(docs.labels, probs.argmax(axis=1), len(clf.labels))
    out["nll"] = nll(probs, docs.labels)
    out["ece"] = expected_calibration_error(probs, docs.labels)
    return out


#: Head mode under a time limit: training windows are encoded in blocks of this many (in a
#: seeded random order), so that the limit can cut the example set between blocks...
EMBED_BLOCK = 128
#: ...keeping this share of the loop's time for the head's epochs.
HEAD_SHARE = 0.1


class _Loop:
    """The training loop; mode-specific parts are the example set and the forward pass."""

    def __init__(self, config: TrainConfig, data: TrainData, module: TextClassifier,
                 device: torch.device, precision: Precision, note: Note,
                 budget: Budget | None = None, costs: PostCosts | None = None,
                 distill: DistillSet | None = None) -> None:
        self.config = config
        self.data = data
        self.module = module
        self.device = device
        self.precision = precision
        self.note = note
        self.budget = budget
        self.costs = costs
        self.timer = StepTimer()
        self.last_eval_s: float | None = None
        self.spec = validation_spec(config, data.labels)
        self.distill = distill
        #: the teachers' probability per example (distillation; NaN rows: none)
        self.soft: torch.Tensor | None = None
        if distill is not None:  # labelled windows first, then the unlabelled texts' windows
            chunks, labels, soft, self.n_labelled = distill.examples(data.train)
            self.soft = torch.from_numpy(soft)
        else:
            chunks, labels = data.train.chunk_examples()
            self.n_labelled = len(chunks)
        #: windows per document, in the examples' order (labelled, then unlabelled texts)
        self.doc_sizes = [len(d) for d in data.train.docs]
        if distill is not None:
            self.doc_sizes += [len(d) for d in distill.unlabelled_docs]
        self.n_examples = len(chunks)
        self.chunks = chunks
        self.targets = torch.from_numpy(labels)
        self.val_chunks = [c for d in data.val.docs for c in d]
        self.vectors: torch.Tensor | None = None
        self.val_vectors: torch.Tensor | None = None
        if config.mode == "head":
            t0 = time.perf_counter()
            n_train = len(chunks)
            self.val_vectors = embed_chunks(module, self.val_chunks, device, precision)
            if budget is not None and budget.limited:
                self._embed_within_budget(budget)
            else:
                self.vectors = embed_chunks(module, chunks, device, precision)
            cut = (f" ({len(self.chunks)} of {n_train} training chunks: the time limit)"
                   if len(self.chunks) < n_train else "")
            note(f"head mode: encoded {len(self.chunks) + len(self.val_chunks)} chunks once "
                 f"in {time.perf_counter() - t0:.1f} s{cut}")
        self.plan = [self.batches(e) for e in range(config.epochs or 1)]

    def _embed_within_budget(self, budget: Budget) -> None:
        """Encode the training chunks block by block until the loop's time (less HEAD_SHARE
        of it, for the head's epochs) runs out; keep the encoded ones, in their order."""
        n, n_lab = len(self.chunks), self.n_labelled
        rng = np.random.default_rng(self.config.seed + 17)  # labelled windows first
        order = torch.from_numpy(np.concatenate([rng.permutation(n_lab),
                                                 n_lab + rng.permutation(n - n_lab)]))
        vectors = torch.empty((n, self.module.head.in_features), dtype=torch.float32)
        keep_for_head = HEAD_SHARE * max(budget.loop_left(), 0.0)
        done, per_chunk = 0, 0.0
        while done < n:
            block = order[done : done + EMBED_BLOCK]
            if done and not budget.fits(per_chunk * len(block) + keep_for_head):
                break
            t0 = time.perf_counter()
            vectors[block] = embed_chunks(self.module, [self.chunks[int(i)] for i in block],
                                          self.device, self.precision)
            per_chunk = (time.perf_counter() - t0) / len(block)
            done += len(block)
        if done < n:
            keep = order[:done].sort().values
            self.chunks = [self.chunks[int(i)] for i in keep]
            self.targets = self.targets[keep]
            self.soft = self.soft[keep] if self.soft is not None else None
            vectors = vectors[keep]
        self.vectors = vectors

    def batches(self, epoch: int) -> list[list[int]]:
        """Example indices per step of `epoch`; the same for a seed, also after --resume."""
        seed = self.config.seed * 1000 + epoch
        if self.config.mode == "head":
            return fixed_batches(len(self.chunks), self.config.head_batch_size, seed)
        lengths = [len(c) for c in self.chunks]
        per_doc = self.config.windows_per_doc
        subset = (sample_windows(self.doc_sizes, per_doc, seed) if per_doc
                  else np.arange(len(lengths)))
        sub = epoch_batches([lengths[i] for i in subset], self.config.batch_tokens,
                            self.config.max_batch_size, seed)
        return [[int(subset[j]) for j in b] for b in sub]

    def set_train_mode(self) -> None:
        """Dropout on where training happens (head mode: the head's dropout only)."""
        if self.config.mode == "head":
            self.module.eval()
            self.module.dropout.train()
        else:
            self.module.train()

    def loss(self, idx: list[int]) -> torch.Tensor:
        """Cross-entropy of one batch, or with teachers the distillation loss
        (training/distill.py); logits in float32 even under bf16 autocast."""
        y = self.targets[idx].to(self.device)
        if self.vectors is not None:
            x = self.vectors[idx].to(self.device)
            logits = self.module.head(self.module.dropout(x))
        else:
            ids, mask = pad_batch([self.chunks[i] for i in idx], self.module.pad_id,
                                  self.device)
            with autocast_for(self.device, self.precision):
                logits = self.module(ids, mask)
        if self.distill is not None and self.soft is not None:
            return distill_loss(logits.float(), y, self.soft[idx].to(self.device),
                                self.distill.temperature, self.distill.alpha)
        return F.cross_entropy(logits.float(), y)

    def checkpoint_extra(self) -> dict[str, Any]:
        """What --resume needs besides the weights: the teachers' weights and the number of
        unlabelled texts used."""
        if self.distill is None:
            return {}
        info = self.distill.info
        return {"teacher_weights": [t.weights_sha256 for t in info.teachers],
                "unlabelled_used": info.unlabelled.used if info.unlabelled else None}

    def eval_estimate(self) -> float:
        """Seconds of the next validation pass: the last one's, else the measured costs'."""
        if self.last_eval_s is not None:
            return 1.2 * self.last_eval_s
        if self.costs is None:
            return 0.0
        docs = len(self.data.val)
        if self.val_vectors is not None:  # head mode: cached vectors, aggregation only
            return 0.1 + docs * self.costs.doc_s
        return 1.2 * self.costs.validation_s(self.precision, len(self.val_chunks), docs)

    def validate(self) -> dict[str, float]:
        """Validation metrics of whole documents through `DocClassifier` (T = 1)."""
        t0 = time.perf_counter()
        try:
            return self._validate()
        finally:
            self.last_eval_s = time.perf_counter() - t0

    def _validate(self) -> dict[str, float]:
        clf: DocClassifier[LogitsProvider]
        if self.val_vectors is not None:
            clf = DocClassifier(self.spec, CachedVectorPredictor(self.module.head, self.val_chunks,
                                                                 self.val_vectors))
        else:
            clf = build_classifier(self.spec, self.module, device=self.device,
                                   precision=self.precision)
        self.module.eval()
        try:
            return doc_metrics(clf, self.data.val)
        finally:
            self.set_train_mode()


def resume_payload(config: TrainConfig, note: Note) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None; checked against `config` before any work.

    Raises:
        ConfigError: the checkpoint was written with different settings.
    """
    if not config.resume:
        return None
    last = ckpt.latest_checkpoint(config.out)
    if last is None:
        note(f"--resume: no checkpoint in {ckpt.checkpoint_dir(config.out)}; starting afresh")
        return None
    payload = ckpt.load_checkpoint(last)
    saved = TrainConfig.model_validate(payload["config"])
    diff = config.resume_differences(saved)
    if diff:
        raise ConfigError(
            f"cannot resume from {last}: settings differ ({', '.join(diff)}); "
            "use the same settings or drop --resume"
        )
    payload["path"] = last
    return payload


def _run_loop(
    loop: _Loop, config: TrainConfig, note: Note, resume: dict[str, Any] | None = None,
    budget: Budget | None = None,
) -> ckpt.TrainState:
    """Train until the epochs, patience or time run out; returns the final state.

    With a time limit (`budget`), each step first checks that it fits, together with what
    stopping after it needs (a checkpoint; a validation pass when there is a best state to
    compare with or the epoch ends), before the post-loop reserve. When it does not, the
    loop stops: it validates if a best state exists (and keeps the better one), writes a
    checkpoint inside the epoch, and returns with `stopped == "budget"`.
    """
    module = loop.module
    optimizer = torch.optim.AdamW(param_groups(module, config))
    total_steps = sum(len(b) for b in loop.plan)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(total_steps, config.warmup_ratio)
    )
    state = ckpt.TrainState()
    if resume is not None:
        load_trainable_state(module, resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        ckpt.restore_rng(resume)
        state = resume["state"]
        if state.stopped == "budget":  # a new command has a new budget: train on
            state.stopped = None
        inside = f" and {state.batch} batch(es) of the next" if state.batch else ""
        note(f"resumed from {resume['path'].name}: {state.epoch} epoch(s){inside}, "
             f"step {state.step}")
    started = time.perf_counter() - state.seconds
    trainable = [p for p in module.parameters() if p.requires_grad]
    epochs = config.epochs or 1
    timer = loop.timer
    limited = budget is not None and budget.limited
    checkpoint_s = loop.costs.checkpoint_s if loop.costs is not None else 0.0
    forecast_after = 3  # steps of this run after which the plan is reported

    def evaluate(tag: str) -> bool:
        """Validate, track the best state; True when patience ran out."""
        metrics = loop.validate()
        metrics.update(epoch=state.epoch, step=state.step, at=tag,
                       seconds=round(time.perf_counter() - started, 1))
        state.history.append(metrics)
        value = metrics[config.metric]
        bar.set_metric(value)
        improved = value > state.best_metric
        note(f"{tag}: val accuracy {metrics['accuracy']:.4f} macro_f1 {metrics['macro_f1']:.4f} "
             f"nll {metrics['nll']:.4f}{'  (best)' if improved else ''}  "
             f"[{metrics['seconds']:.0f} s]")
        if improved:
            state.best_metric = value
            state.best_state = trainable_state(module)
            state.bad_evals = 0
            return False
        state.bad_evals += 1
        return state.bad_evals >= config.patience

    def save() -> None:
        state.seconds = time.perf_counter() - started
        ckpt.save_checkpoint(
            config.out,
            config=config.model_dump(mode="json"),
            state=state,
            model_state=trainable_state(module),
            optimizer=optimizer,
            scheduler=scheduler,
            extra=loop.checkpoint_extra(),
        )

    def room_for(i: int, n_batches: int) -> bool:
        """Whether step `i` of the epoch, and what a stop right after it needs, still fit."""
        if not limited or timer.count == 0:  # no limit, or this run's first step
            return True
        assert budget is not None
        due = bool(config.eval_every) and (state.step + 1) % config.eval_every == 0
        validates = i == n_batches - 1 or due or bool(state.history)
        need = (timer.estimate() or 0.0) + checkpoint_s
        return budget.fits(need + (loop.eval_estimate() if validates else 0.0))

    def forecast() -> None:
        """One line, early on: how far the loop's share of the budget will get."""
        assert budget is not None
        per_step = timer.estimate() or 0.0
        left_steps = total_steps - state.step
        fit = int(max(budget.loop_left(), 0.0) / per_step) if per_step > 0 else left_steps
        verdict = ("all of them fit" if fit >= left_steps
                   else f"about {fit} fit: the loop will stop early to finish within the limit")
        note(f"time budget: {per_step:.2f} s per step; {budget.loop_left():.0f} s left for the "
             f"loop, {left_steps} steps to go, {verdict}")

    with TrainProgress(total_steps, enabled=config.progress, metric_name=config.metric) as bar:
        bar.advance(sum(len(b) for b in loop.plan[: state.epoch]) + state.batch)
        loop.set_train_mode()
        while state.epoch < epochs and state.stopped is None:
            epoch = state.epoch
            bar.set_description(f"epoch {epoch + 1}/{epochs}")
            losses: list[float] = []
            batches = loop.plan[epoch]
            n_batches = len(batches)
            every = max(1, n_batches // 10) if not bar.live else 0
            for i in range(state.batch, n_batches):
                if not room_for(i, n_batches):
                    state.stopped = "budget"
                    break
                t_step = time.perf_counter()
                loss = loop.loss(batches[i])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
                optimizer.step()
                scheduler.step()
                losses.append(float(loss.detach()))
                timer.add(time.perf_counter() - t_step)
                state.step += 1
                state.batch = i + 1
                bar.advance(loss=losses[-1])
                if limited and timer.count == forecast_after:
                    forecast()
                if every and state.batch % every == 0 and state.batch < n_batches:
                    note(f"epoch {epoch + 1} step {state.batch}/{n_batches}: loss "
                         f"{np.mean(losses[-every:]):.4f}  [{time.perf_counter() - started:.0f} s]")
                due = bool(config.eval_every) and state.step % config.eval_every == 0
                if due and evaluate(f"step {state.step}"):
                    state.stopped = "early_stopping"
                    break
            if state.stopped == "budget":
                assert budget is not None
                note(f"time budget: stopping in epoch {epoch + 1} after {state.batch} of "
                     f"{n_batches} batches (step {state.step} of {total_steps}), "
                     f"{budget.elapsed():.0f} s into the {budget.limit_s:.0f} s limit; "
                     f"{budget.reserve_s:.0f} s are kept for calibration and checks")
                if (config.mode != "head" and not config.windows_per_doc
                        and loop.n_examples > 1.5 * len(loop.doc_sizes)):
                    note(f"long documents ({loop.n_examples / len(loop.doc_sizes):.1f} windows "
                         f"each): --windows-per-doc 1 makes each epoch that much cheaper "
                         f"(README: 'Cheaper epochs on long documents')")
                if state.history and state.history[-1]["step"] != state.step:
                    evaluate(f"epoch {epoch + 1} (partial)")  # is it better than the best?
                save()
                break
            if state.stopped is not None:
                break
            state.epoch += 1
            state.batch = 0
            mean_loss = float(np.mean(losses)) if losses else float("nan")
            note(f"epoch {state.epoch}/{epochs}: train loss {mean_loss:.4f}")
            if not (state.history and state.history[-1]["step"] == state.step) and evaluate(
                f"epoch {state.epoch}"
            ):
                state.stopped = "early_stopping"
            save()
            if state.stopped == "early_stopping":
                note(f"early stopping: no {config.metric} gain in {config.patience} evaluations")
    state.seconds = time.perf_counter() - started
    if state.best_state is not None:
        load_trainable_state(module, state.best_state)
    return state


def _precisions_to_check(device: torch.device) -> list[Precision]:
    if device.type == "cuda":
        return ["bf16", "fp16"] if torch.cuda.is_bf16_supported() else ["fp16"]
    return ["bf16", "int8"]


def finalize(
    out: Path,
    manifest: ModelManifest,
    val: PreparedDocs,
    device: torch.device,
    note: Note,
    checked: Sequence[Precision] | None = None,
    docs: Sequence[int] | None = None,
) -> tuple[ModelManifest, dict[str, Any]]:
    """Load the written artifact as `run` would, fit T, check precisions; final manifest.

    Args:
        out: the artifact directory (weights and a provisional manifest written).
        manifest: the draft manifest.
        val: the validation documents.
        device: where to run.
        note: progress lines.
        checked: the precisions to run, fp32 first (default: fp32 and the device's others).
        docs: the validation documents to calibrate and check on (default: all).

    Returns:
        The manifest to write and the validation metrics recorded in it.
    """
    used = val if docs is None or len(docs) == len(val) else val.subset(docs)
    loaded = load_artifact(out, allow_provisional=True)
    spec = ClassifierSpec.from_manifest(loaded.manifest)
    chunks = [c for d in used.docs for c in d]
    logits: dict[str, np.ndarray] = {}
    accuracy: dict[str, float] = {}
    modes: list[Precision] = list(checked) if checked else ["fp32", *_precisions_to_check(device)]
    for precision in modes:
        built = build_classifier(spec, loaded.module, device=device, precision=precision)
        logits[precision] = built.predictor.logits(chunks)  # once per mode, reused below
        clf = DocClassifier(spec, FixedLogits(chunks, logits[precision]))
        predicted = clf.probabilities(used.docs).argmax(axis=1)
        accuracy[precision] = float((predicted == used.labels).mean())
    precision_ok = [p for p, a in accuracy.items() if abs(a - accuracy["fp32"]) <= 0.005 + 1e-9]
    fixed = FixedLogits(chunks, logits["fp32"])

    def val_nll(t: float) -> float:
        clf = DocClassifier(spec.with_temperature(t), fixed)
        return nll(clf.probabilities(used.docs), used.labels)

    temperature = fit_temperature_fn(val_nll)
    raw = doc_metrics(DocClassifier(spec, fixed), used)
    calibrated = manifest.model_copy(update={"temperature": temperature})
    metrics = doc_metrics(DocClassifier(spec.with_temperature(temperature), fixed), used)
    metrics.update(n=len(used), nll_uncalibrated=raw["nll"], ece_uncalibrated=raw["ece"],
                   accuracy_by_precision=accuracy)
    subset = ""
    if len(used) < len(val):
        metrics.update(n_val=len(val))
        subset = f" (on {len(used)} of {len(val)} val docs: the time limit)"
    note(f"calibration: T = {temperature:.3f}, val ECE {raw['ece']:.4f} -> {metrics['ece']:.4f}, "
         f"NLL {raw['nll']:.4f} -> {metrics['nll']:.4f}; precision ok: {', '.join(precision_ok)}"
         f"{subset}")
    return calibrated.model_copy(update={"precision_ok": precision_ok}), metrics


def _post_plan(costs: PostCosts, val: PreparedDocs, seed: int, allowance_s: float | None,
               limit_s: float | None) -> PostPlan:
    """The calibration/check set that fits `allowance_s` (a stratified prefix of val)."""
    return plan_post(costs, [len(d) for d in val.docs], stratified_indices(val.labels, seed),
                     allowance_s, limit_s)


def _reserve(budget: Budget, costs: PostCosts, data: TrainData, config: TrainConfig,
             checked: Sequence[str], note: Note) -> PostPlan:
    """Plan the post-loop work before the loop and reserve its time in `budget`."""
    left = budget.remaining()
    plan = _post_plan(costs, data.val, config.seed, POST_SHARE * left, budget.limit_s)
    budget.reserve_s = plan.reserve_s
    on = (f"{len(plan.docs)} of {plan.of_docs} val docs ({plan.windows} of {plan.of_windows} "
          f"windows)" if plan.capped else f"all {plan.of_docs} val docs ({plan.windows} windows)")
    note(f"time budget: {budget.limit_s:.0f} s; {budget.elapsed():.1f} s used by start-up, data "
         f"and model; calibration and checks ({', '.join(checked)}) on {on} estimated at "
         f"{plan.estimate_s:.1f} s, {plan.reserve_s:.1f} s reserved; the loop gets "
         f"{max(budget.loop_left(), 0.0):.0f} s")
    if budget.loop_left() <= 0:
        note("time budget: too small for this data: nothing is left for training after "
             "setup and the reserve; training one step, and finishing late")
    return plan


def train(config: TrainConfig, note: Note | None = None, *,
          started: float | None = None) -> TrainResult:
    """Run a whole training: data, loop, artifact, calibration, manifest.

    Args:
        config: the run's settings (per-mode defaults are filled in here).
        note: where progress lines go (default: stderr).
        started: when the command started, on `time.perf_counter`'s scale (the CLI passes
            the process start); the time limit counts from there. Default: now.

    Returns:
        The artifact directory, its manifest, the validation history, total seconds and
        how the time budget was spent.

    Raises:
        ConfigError: bad data or settings, or an incompatible checkpoint for --resume.
    """
    t0 = time.perf_counter()
    config = config.resolved()
    limit_s = config.limit_minutes * 60 if config.limit_minutes else None
    budget = Budget(limit_s, started if started is not None else t0)
    budget.mark("start")
    if note is None:
        console = TrainProgress(0, enabled=False)
        note = console.note
    resume = resume_payload(config, note)
    base = resolve_base(config.base)  # a bad --base fails here, before any work
    seed_everything(config.seed)
    config.out.mkdir(parents=True, exist_ok=True)
    data = load_training_data(config, note, base)
    if config.teachers:  # before any model is loaded: a teacher that cannot teach fails now
        check_teachers(config.teachers, data.labels, config.out, config.unlabelled)
    budget.mark("prepared")
    device = pick_device(None)
    precision = train_precision(config, device)
    thread_choice = configure_threads(config.threads)
    threads = thread_choice.threads
    checked: list[Precision] = ["fp32", *_precisions_to_check(device)]
    t_load = time.perf_counter()
    encoder = load_base_encoder(base=base)
    load_s = time.perf_counter() - t_load
    draft = draft_manifest(config, data.labels, base,
                           lora_targets(config, encoder) if config.mode == "lora" else None)
    costs: PostCosts | None = None
    if budget.limited:
        costs = measure_post_costs(encoder, ClassifierSpec.from_manifest(draft), data.val,
                                   device, checked, precision, load_s, seed=config.seed)
    module = build_trainable(config, len(data.labels), encoder=encoder).to(device)
    n_train = sum(p.numel() for p in module.parameters() if p.requires_grad)
    note(f"mode {config.mode}: {n_train:,} trainable parameters, {device.type} {precision} "
         f"({threads} thread{'s' if threads > 1 else ''}: {thread_choice.why}), "
         f"{config.epochs} epoch(s), lr {config.lr:g}, head lr {config.head_lr:g}")
    reserved: PostPlan | None = None
    if costs is not None:
        saved = n_train if config.mode != "full" else sum(p.numel() for p in module.parameters())
        costs = replace(costs, write_s=write_seconds(saved, copies=3),  # write, 2 hashes
                        checkpoint_s=write_seconds(n_train, copies=4))  # + best, Adam moments
        reserved = _reserve(budget, costs, data, config, checked, note)
    t_teach = time.perf_counter()
    distill = None if not config.teachers else prepare_distillation(
        config, data.labels, data.train, data.val, make_preprocessor(config.preprocess, base),
        device, note, budget=budget, costs=costs, precision=precision, resume=resume)
    teachers_s = time.perf_counter() - t_teach
    if resume is None and ckpt.latest_checkpoint(config.out) is not None:
        note(f"starting afresh: removing the checkpoint of an earlier run in "
             f"{ckpt.checkpoint_dir(config.out)} (--resume continues from it instead)")
        ckpt.remove_checkpoints(config.out)
    output.begin_artifact(config.out, draft, data_sha256=data.file.sha256)
    budget.mark("setup")
    loop = _Loop(config, data, module, device, precision, note, budget=budget, costs=costs,
                 distill=distill)
    if config.windows_per_doc and config.mode != "head":
        per_epoch = sum(len(b) for b in loop.plan[0])
        note(f"epochs: at most {config.windows_per_doc} window(s) of each document, drawn "
             f"afresh each epoch ({per_epoch:,} of {loop.n_examples:,} windows per epoch)")
    state = _run_loop(loop, config, note, resume, budget)
    loop_end = budget.mark("loop")

    plan = None  # after the loop: the set that fits the time actually left
    if costs is not None:
        plan = _post_plan(costs, data.val, config.seed, budget.remaining(), limit_s)
    save_weights(module, config, config.out, base.name)
    output.write_provisional(config.out, draft, "finalizing", data_sha256=data.file.sha256)
    manifest, val_metrics = finalize(config.out, draft, data.val, device, note, checked,
                                     plan.docs if plan is not None else None)
    best = max(state.history, key=lambda h: h[config.metric]) if state.history else {}
    seconds = time.perf_counter() - t0
    stopped_by = {"budget": "budget", "early_stopping": "converged"}.get(state.stopped or "",
                                                                          "epochs")
    epoch_batches_n = len(loop.plan[min(state.epoch, len(loop.plan) - 1)])
    budget_info: dict[str, Any] = {
        "limit_s": limit_s,
        "used_s": round(budget.elapsed(), 1),
        "clock": "process start" if started is not None else "train() call",
        "stopped_by": stopped_by,
        "startup_s": round(budget.marks["start"], 1),
        "prepare_s": round(budget.marks["prepared"] - budget.marks["start"], 1),
        "setup_s": round(budget.marks["setup"], 1),
        "teachers_s": round(teachers_s, 1) if distill is not None else None,
        "loop_s": round(loop_end - budget.marks["setup"], 1),
        "post_s": round(budget.elapsed() - loop_end, 1),
        "reserved_s": round(budget.reserve_s, 1) if budget.limited else None,
        "post_estimate_s": round(plan.estimate_s, 1) if plan is not None else None,
        "step_s": round(loop.timer.median() or 0.0, 3),
        "steps_run": loop.timer.count,
        "steps_planned": sum(len(b) for b in loop.plan),
        "stopped_at": ({"epoch": state.epoch + 1, "batch": state.batch,
                        "of_batches": epoch_batches_n, "step": state.step}
                       if state.stopped == "budget" else None),
        "calibration": (plan.as_dict() if plan is not None else
                        {"docs": len(data.val), "of_docs": len(data.val), "capped": False}),
        "reserved_calibration": reserved.as_dict() if reserved is not None else None,
        "training_chunks": {"used": len(loop.chunks), "of": loop.n_examples},
        "costs": costs.as_dict() if costs is not None else None,
        "checkpoint_kept": state.stopped == "budget" or config.keep_checkpoints,
    }
    distillation = ({"distillation": distill.info.model_dump(mode="json")}
                    if distill is not None else {})
    info = TrainingInfo(
        data_sha256=data.file.sha256,
        rows={
            "train": len(data.train),
            "val": len(data.val),
            "train_chunks": data.train.n_chunks(),
            "skipped": sum(data.train.errors.values()) + sum(data.val.errors.values()),
        },
        hyperparameters=config.hyperparameters(),
        seconds=round(seconds, 1),
        budget=BudgetInfo.model_validate(budget_info),
        train_seconds=round(state.seconds, 1),
        data_file=data.file.path.name,
        data_split_rows=data.file.split_counts,
        val_source=data.val_source,
        device=device.type,
        threads=threads,
        train_precision=precision,
        epochs_run=state.epoch,
        steps=state.step,
        stopped=state.stopped,
        best={k: best.get(k) for k in ("epoch", "step", "at", "accuracy", "macro_f1")},
        history=state.history,
        **distillation,
    )
    manifest = output.write_manifest_atomic(  # last: the artifact is complete from here on
        config.out, manifest.model_copy(update={"status": "complete", "training": info,
                                                "metrics": {"val": val_metrics}})
    )
    if not budget_info["checkpoint_kept"]:
        ckpt.remove_checkpoints(config.out)
    if distill is not None:
        note(describe_distillation(distill.info))
    note(f"wrote {config.out} ({manifest.name} {manifest.version}, {config.mode}) "
         f"in {budget.elapsed():.0f} s: val accuracy {val_metrics['accuracy']:.4f}, "
         f"macro_f1 {val_metrics['macro_f1']:.4f}; {describe(budget_info)}")
    return TrainResult(config.out, manifest, state.history, seconds, budget_info)
