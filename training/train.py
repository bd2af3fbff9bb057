"""`docstream train`: fit a model on chunks, calibrate it, and write the artifact.

Steps:
1. read the data; validation = the `val` split if present, else a seeded, stratified
   fraction of train;
2. prepare every document with `Preprocessor.prepare` (the `run` path); each chunk of a
   training document becomes an example with the document's label;
3. train (head / lora / full) with AdamW and linear warmup/decay over length-bucketed
   token-budget batches, validating each epoch through `DocClassifier`, with early
   stopping, a time limit and per-epoch checkpoints;
4. write the weights, load them back with `model.loader.load_model` exactly as `run` does,
   fit the temperature on validation, check bf16 against fp32, and write the manifest.

Long module: one training run, read top to bottom; the loop, resume and finalize steps share
the run's state (`_Loop`, `TrainState`), and the reusable parts already live in modeling,
batches, checkpoint and predictors.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from docstream.errors import ConfigError
from docstream.model.artifact import (
    ADAPTER_DIR,
    ENCODER_FILE,
    HEAD_FILE,
    MANIFEST,
    BaseModelRef,
    ModelManifest,
    TrainingInfo,
    base_weights_sha256,
    write_manifest,
)
from docstream.model.build import build_classifier
from docstream.model.calibration import expected_calibration_error, fit_temperature_fn, nll
from docstream.model.classifier import TextClassifier
from docstream.model.classify import ClassifierSpec, DocClassifier, LogitsProvider
from docstream.model.predictor import Precision, pick_device
from docstream.model.tensors import autocast_for, pad_batch

from . import checkpoint as ckpt
from .batches import epoch_batches, fixed_batches
from .config import TrainConfig
from .data import DataFile, holdout, label_order, read_data, sample_rows
from .metrics import summary
from .modeling import (
    build_trainable,
    configure_threads,
    embed_chunks,
    load_artifact,
    load_trainable_state,
    lora_settings,
    param_groups,
    save_weights,
    train_precision,
    trainable_state,
)
from .predictors import CachedVectorPredictor, FixedLogits
from .prepare import PreparedDocs, make_preprocessor, prepare_rows
from .progress import TrainProgress

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


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch, and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def load_training_data(config: TrainConfig, note: Note) -> TrainData:
    """Read, split and prepare the data of a run."""
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
    pre = make_preprocessor(config.preprocess)
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


def draft_manifest(config: TrainConfig, labels: list[str]) -> ModelManifest:
    """The manifest before metrics: enough for `DocClassifier` during validation."""
    return ModelManifest(
        name=config.name,
        version=config.version,
        mode=config.mode,
        labels=labels,
        base_model=BaseModelRef(weights_sha256=base_weights_sha256()),
        preprocess=config.preprocess,
        review_threshold=config.review_threshold,
        lora=lora_settings(config) if config.mode == "lora" else None,
    )


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


class _Loop:
    """The training loop; mode-specific parts are the example set and the forward pass."""

    def __init__(self, config: TrainConfig, data: TrainData, module: TextClassifier,
                 device: torch.device, precision: Precision, note: Note) -> None:
        self.config = config
        self.data = data
        self.module = module
        self.device = device
        self.precision = precision
        self.note = note
        self.spec = ClassifierSpec.from_manifest(draft_manifest(config, data.labels))
        chunks, labels = data.train.chunk_examples()
        self.chunks = chunks
        self.targets = torch.from_numpy(labels)
        self.val_chunks = [c for d in data.val.docs for c in d]
        self.vectors: torch.Tensor | None = None
        self.val_vectors: torch.Tensor | None = None
        if config.mode == "head":
            t0 = time.perf_counter()
            self.vectors = embed_chunks(module, chunks, device, precision)
            self.val_vectors = embed_chunks(module, self.val_chunks, device, precision)
            note(f"head mode: encoded {len(chunks) + len(self.val_chunks)} chunks once "
                 f"in {time.perf_counter() - t0:.1f} s")
        self.plan = [self.batches(e) for e in range(config.epochs or 1)]

    def batches(self, epoch: int) -> list[list[int]]:
        """Example indices per step of `epoch`; the same for a seed, also after --resume."""
        seed = self.config.seed * 1000 + epoch
        if self.config.mode == "head":
            return fixed_batches(len(self.chunks), self.config.head_batch_size, seed)
        lengths = [len(c) for c in self.chunks]
        return epoch_batches(lengths, self.config.batch_tokens, self.config.max_batch_size, seed)

    def set_train_mode(self) -> None:
        """Dropout on where training happens (head mode: the head's dropout only)."""
        if self.config.mode == "head":
            self.module.eval()
            self.module.dropout.train()
        else:
            self.module.train()

    def loss(self, idx: list[int]) -> torch.Tensor:
        """Cross-entropy of one batch (logits in float32 even under bf16 autocast)."""
        y = self.targets[idx].to(self.device)
        if self.vectors is not None:
            x = self.vectors[idx].to(self.device)
            logits = self.module.head(self.module.dropout(x))
        else:
            ids, mask = pad_batch([self.chunks[i] for i in idx], device=self.device)
            with autocast_for(self.device, self.precision):
                logits = self.module(ids, mask)
        return F.cross_entropy(logits.float(), y)

    def validate(self) -> dict[str, float]:
        """Validation metrics of whole documents through `DocClassifier` (T = 1)."""
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
    loop: _Loop, config: TrainConfig, note: Note, resume: dict[str, Any] | None = None
) -> ckpt.TrainState:
    """Train until the epochs, patience or time run out; returns the final state."""
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
        note(f"resumed from {resume['path'].name}: {state.epoch} epoch(s), step {state.step}")
    limit = (config.limit_minutes or 0) * 60
    started = time.perf_counter() - state.seconds
    trainable = [p for p in module.parameters() if p.requires_grad]
    epochs = config.epochs or 1

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

    with TrainProgress(total_steps, enabled=config.progress, metric_name=config.metric) as bar:
        bar.advance(sum(len(b) for b in loop.plan[: state.epoch]))
        loop.set_train_mode()
        while state.epoch < epochs and state.stopped is None:
            epoch = state.epoch
            bar.set_description(f"epoch {epoch + 1}/{epochs}")
            losses: list[float] = []
            evaluated_at_step = -1
            n_batches = len(loop.plan[epoch])
            every = max(1, n_batches // 10) if not bar.live else 0
            for i, idx in enumerate(loop.plan[epoch], start=1):
                loss = loop.loss(idx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
                optimizer.step()
                scheduler.step()
                state.step += 1
                losses.append(float(loss.detach()))
                bar.advance(loss=losses[-1])
                if every and i % every == 0 and i < n_batches:
                    note(f"epoch {epoch + 1} step {i}/{n_batches}: loss "
                         f"{np.mean(losses[-every:]):.4f}  [{time.perf_counter() - started:.0f} s]")
                if config.eval_every and state.step % config.eval_every == 0:
                    evaluated_at_step = state.step
                    if evaluate(f"step {state.step}"):
                        state.stopped = "early_stopping"
                        break
                if limit and time.perf_counter() - started > limit:
                    state.stopped = "time_limit"
                    note(f"time limit of {config.limit_minutes:g} min reached in epoch "
                         f"{epoch + 1}; keeping the best state so far")
                    if evaluated_at_step != state.step:
                        evaluate(f"epoch {epoch + 1} (partial)")
                    break
            if state.stopped is not None:
                break
            state.epoch += 1
            mean_loss = float(np.mean(losses)) if losses else float("nan")
            note(f"epoch {state.epoch}/{epochs}: train loss {mean_loss:.4f}")
            if evaluated_at_step != state.step and evaluate(f"epoch {state.epoch}"):
                state.stopped = "early_stopping"
            state.seconds = time.perf_counter() - started
            ckpt.save_checkpoint(
                config.out,
                config=config.model_dump(mode="json"),
                state=state,
                model_state=trainable_state(module),
                optimizer=optimizer,
                scheduler=scheduler,
            )
            if state.stopped == "early_stopping":
                note(f"early stopping: no {config.metric} gain in {config.patience} evaluations")
    state.seconds = time.perf_counter() - started
    if state.best_state is not None:
        load_trainable_state(module, state.best_state)
    return state


def _clear_artifact(out: Path) -> None:
    """Remove the artifact files of an earlier run (not checkpoints, not other files)."""
    for name in (MANIFEST, HEAD_FILE, ENCODER_FILE):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / ADAPTER_DIR, ignore_errors=True)


def _precisions_to_check(device: torch.device) -> list[Precision]:
    if device.type == "cuda":
        return ["bf16", "fp16"] if torch.cuda.is_bf16_supported() else ["fp16"]
    return ["bf16", "int8"]


def finalize(
    out: Path, manifest: ModelManifest, val: PreparedDocs, device: torch.device, note: Note
) -> tuple[ModelManifest, dict[str, Any]]:
    """Load the written artifact as `run` would, fit T, check precisions; final manifest.

    Returns:
        The manifest to write and the validation metrics recorded in it.
    """
    loaded = load_artifact(out)
    spec = ClassifierSpec.from_manifest(loaded.manifest)
    chunks = [c for d in val.docs for c in d]
    logits: dict[str, np.ndarray] = {}
    accuracy: dict[str, float] = {}
    modes: list[Precision] = ["fp32", *_precisions_to_check(device)]
    for precision in modes:
        built = build_classifier(spec, loaded.module, device=device, precision=precision)
        logits[precision] = built.predictor.logits(chunks)  # once per mode, reused below
        clf = DocClassifier(spec, FixedLogits(chunks, logits[precision]))
        predicted = clf.probabilities(val.docs).argmax(axis=1)
        accuracy[precision] = float((predicted == val.labels).mean())
    precision_ok = [p for p, a in accuracy.items() if abs(a - accuracy["fp32"]) <= 0.005 + 1e-9]
    fixed = FixedLogits(chunks, logits["fp32"])

    def val_nll(t: float) -> float:
        clf = DocClassifier(spec.with_temperature(t), fixed)
        return nll(clf.probabilities(val.docs), val.labels)

    temperature = fit_temperature_fn(val_nll)
    raw = doc_metrics(DocClassifier(spec, fixed), val)
    calibrated = manifest.model_copy(update={"temperature": temperature})
    metrics = doc_metrics(DocClassifier(spec.with_temperature(temperature), fixed), val)
    metrics.update(n=len(val), nll_uncalibrated=raw["nll"], ece_uncalibrated=raw["ece"],
                   accuracy_by_precision=accuracy)
    note(f"calibration: T = {temperature:.3f}, val ECE {raw['ece']:.4f} -> {metrics['ece']:.4f}, "
         f"NLL {raw['nll']:.4f} -> {metrics['nll']:.4f}; precision ok: {', '.join(precision_ok)}")
    return calibrated.model_copy(update={"precision_ok": precision_ok}), metrics


def train(config: TrainConfig, note: Note | None = None) -> TrainResult:
    """Run a whole training: data, loop, artifact, calibration, manifest.

    Args:
        config: the run's settings (per-mode defaults are filled in here).
        note: where progress lines go (default: stderr).

    Returns:
        The artifact directory, its manifest, the validation history and total seconds.

    Raises:
        ConfigError: bad data or settings, or an incompatible checkpoint for --resume.
    """
    t0 = time.perf_counter()
    config = config.resolved()
    if note is None:
        console = TrainProgress(0, enabled=False)
        note = console.note
    resume = resume_payload(config, note)
    seed_everything(config.seed)
    config.out.mkdir(parents=True, exist_ok=True)
    data = load_training_data(config, note)
    device = pick_device(None)
    precision = train_precision(config, device)
    threads = configure_threads(config.threads)
    module = build_trainable(config, len(data.labels)).to(device)
    n_train = sum(p.numel() for p in module.parameters() if p.requires_grad)
    note(f"mode {config.mode}: {n_train:,} trainable parameters, {device.type} {precision} "
         f"({threads} thread{'s' if threads > 1 else ''}), "
         f"{config.epochs} epoch(s), lr {config.lr:g}, head lr {config.head_lr:g}")
    loop = _Loop(config, data, module, device, precision, note)
    state = _run_loop(loop, config, note, resume)

    _clear_artifact(config.out)
    save_weights(module, config, config.out)
    manifest = draft_manifest(config, data.labels)
    write_manifest(config.out, manifest)
    manifest, val_metrics = finalize(config.out, manifest, data.val, device, note)
    best = max(state.history, key=lambda h: h[config.metric]) if state.history else {}
    seconds = time.perf_counter() - t0
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
    )
    manifest = write_manifest(
        config.out, manifest.model_copy(update={"training": info, "metrics": {"val": val_metrics}})
    )
    if not config.keep_checkpoints:
        ckpt.remove_checkpoints(config.out)
    note(f"wrote {config.out} ({manifest.name} {manifest.version}, {config.mode}) "
         f"in {seconds:.0f} s: val accuracy {val_metrics['accuracy']:.4f}, "
         f"macro_f1 {val_metrics['macro_f1']:.4f}")
    return TrainResult(config.out, manifest, state.history, seconds)
