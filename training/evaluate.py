"""`docstream evaluate`: score a model artifact on labelled data, the way `run` predicts.

Documents go through `Preprocessor.prepare` with the artifact's own PreprocessConfig and
are classified by `DocClassifier` (calibrated, chunk-aggregated), like `docstream run`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from docstream.errors import ConfigError
from docstream.model.build import build_classifier
from docstream.model.bundled import bundled_model_dir
from docstream.model.calibration import expected_calibration_error, nll, reliability_bins
from docstream.model.classify import DocClassifier
from docstream.model.predictor import Precision
from docstream.model.tokenizer import load_tokenizer
from docstream.preprocess.preprocessor import Preprocessor

from . import report as rpt
from .data import Kind, field_value, read_data
from .machine import configure_threads
from .metrics import confusion_matrix, per_class, summary
from .modeling import load_artifact
from .predictors import CachingPredictor
from .prepare import PreparedDocs, prepare_rows

LENGTH_SLICE = "length_tokens"
LENGTH_EDGES = (32, 64, 128, 256, 512)
MIN_SLICE_N = 30


def length_bucket(tokens: int) -> str:
    """A coarse wordpiece-count bucket, e.g. "65-128"."""
    low = 1
    for edge in LENGTH_EDGES:
        if tokens <= edge:
            return f"{low}-{edge}"
        low = edge + 1
    return f">{LENGTH_EDGES[-1]}"


def _length_sort_key(bucket: str) -> int:
    return int(bucket.lstrip(">").split("-")[0])


def slice_metrics(
    values: Sequence[str], y_true: np.ndarray, y_pred: np.ndarray, n_labels: int,
    min_n: int = MIN_SLICE_N,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Metrics per slice value, and the largest accuracy gap between slices of >= min_n docs.

    Returns:
        ({value: {"n", "accuracy", "macro_f1"}}, {"gap", "best", "worst", "min_n"}); the gap
        entries are None when fewer than two slices have `min_n` documents.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, v in enumerate(values):
        groups[v].append(i)
    out: dict[str, dict[str, Any]] = {}
    for value, idx in groups.items():
        m = summary(y_true[idx], y_pred[idx], n_labels)
        out[value] = {"n": len(idx), **m}
    big = {v: s for v, s in out.items() if s["n"] >= min_n}
    gap: dict[str, Any] = {"gap": None, "best": None, "worst": None, "min_n": min_n}
    if len(big) >= 2:
        best = max(big, key=lambda v: big[v]["accuracy"])
        worst = min(big, key=lambda v: big[v]["accuracy"])
        gap.update(gap=big[best]["accuracy"] - big[worst]["accuracy"], best=best, worst=worst)
    return out, gap


@dataclass(frozen=True)
class EvalResult:
    """The report and where it was written."""

    report: dict[str, Any]
    directory: Path


def evaluate(
    data: str | Path,
    report_dir: str | Path,
    *,
    model_dir: str | Path | None = None,
    split: str | None = "test",
    text_field: str = "text",
    label_field: str = "label",
    split_field: str = "split",
    title_field: str | None = "title",
    kind: Kind | None = None,
    slice_by: Sequence[str] = (),
    precision: Precision = "auto",
    limit: int | None = None,
    threads: int | None = None,
    note: Callable[[str], None] | None = None,
) -> EvalResult:
    """Evaluate an artifact on a data file and write the report files.

    Args:
        data: labelled JSONL file.
        report_dir: where report.json, report.html and the PNGs go.
        model_dir: the artifact (default: the bundled news-topic model).
        split: the split to score (None: all rows; a file without splits: all rows).
        text_field, label_field, split_field, title_field, kind: as for `read_data`.
        slice_by: fields (top-level or metadata) to slice metrics by; a token-length slice
            is always added.
        precision: numeric mode; "auto" picks the fastest the artifact allows here.
        limit: score only the first N rows of the split.
        threads: CPU threads (see `training.machine.pick_threads`).
        note: where progress lines go.

    Raises:
        model.errors.ArtifactError: the artifact is missing, corrupt or incompatible.
        ConfigError: the data is unusable or has labels the model does not know.
    """
    say = note or (lambda _msg: None)
    t0 = time.perf_counter()
    model_path = Path(model_dir) if model_dir is not None else bundled_model_dir()
    loaded = load_artifact(model_path)
    manifest = loaded.manifest
    file = read_data(data, text_field=text_field, label_field=label_field,
                     split_field=split_field, title_field=title_field, kind=kind)
    rows = file.split(split)
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {limit}")
        rows = rows[:limit]
    unknown = sorted({r.label for r in rows} - set(manifest.labels))
    if unknown:
        raise ConfigError(
            f"{file.path} has labels the model {manifest.name} does not know: {unknown[:10]}; "
            f"its labels are {manifest.labels} (check --label-field)"
        )
    pre = Preprocessor(manifest.preprocess, load_tokenizer(loaded.base))
    docs: PreparedDocs = prepare_rows(rows, manifest.labels, pre)
    if len(docs) == 0:
        raise ConfigError("no document survived preprocessing")
    t_prep = time.perf_counter()
    n_threads = configure_threads(threads).threads
    built = build_classifier(manifest, loaded.module, precision=precision, threads=n_threads)
    predictor = CachingPredictor(built.predictor)
    clf = DocClassifier(built.spec, predictor)
    predictions = clf.classify(docs.docs)
    t_model = time.perf_counter()
    probs = clf.probabilities(docs.docs)  # cached logits: same numbers as classify's
    raw = DocClassifier(built.spec.with_temperature(1.0), predictor)
    raw_probs = raw.probabilities(docs.docs)
    index = {lab: i for i, lab in enumerate(manifest.labels)}
    y_pred = np.asarray([index[p.label] for p in predictions], dtype=np.int64)
    y_true = docs.labels
    n_labels = len(manifest.labels)

    slices: dict[str, Any] = {}
    gaps: dict[str, Any] = {}
    for name in [*slice_by, LENGTH_SLICE]:
        if name == LENGTH_SLICE:
            values = [length_bucket(t) for t in docs.token_counts()]
        else:
            values = [field_value(r, name) for r in docs.rows]
        per_value, gap = slice_metrics(values, y_true, y_pred, n_labels)
        if name == LENGTH_SLICE:
            per_value = dict(sorted(per_value.items(), key=lambda kv: _length_sort_key(kv[0])))
        else:
            per_value = dict(sorted(per_value.items(), key=lambda kv: (-kv[1]["n"], kv[0])))
        slices[name], gaps[name] = per_value, gap

    bins = reliability_bins(probs, y_true)
    raw_bins = reliability_bins(raw_probs, y_true)
    ece = expected_calibration_error(probs, y_true)
    ece_raw = expected_calibration_error(raw_probs, y_true)
    headline = summary(y_true, y_pred, n_labels)
    report: dict[str, Any] = {
        "accuracy": headline["accuracy"],
        "macro_f1": headline["macro_f1"],
        "per_class": per_class(y_true, y_pred, manifest.labels),
        "confusion": {
            "labels": manifest.labels,
            "matrix": confusion_matrix(y_true, y_pred, n_labels).tolist(),
        },
        "ece": ece,
        "ece_uncalibrated": ece_raw,
        "nll": nll(probs, y_true),
        "nll_uncalibrated": nll(raw_probs, y_true),
        "temperature": manifest.temperature,
        "slices": slices,
        "max_slice_gap": gaps,
        "n": len(docs),
        "model": {
            "name": manifest.name,
            "version": manifest.version,
            "weights_sha256": manifest.weights_sha256,
            "mode": manifest.mode,
        },
        "precision": predictor.precision,
        "threads": n_threads,
        "data": {
            "file": file.path.name,
            "sha256": file.sha256,
            "split": split,
            "rows": len(rows),
            "skipped": sum(docs.errors.values()),
            "skipped_reasons": docs.errors,
        },
        "seconds": {
            "total": round(time.perf_counter() - t0, 2),
            "prepare": round(t_prep - t0, 2),
            "model": round(t_model - t_prep, 2),
        },
        "docs_per_s": round(len(docs) / max(t_model - t_prep, 1e-9), 1),
    }
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    rpt.plot_confusion(np.asarray(report["confusion"]["matrix"]), manifest.labels,
                       out / rpt.CONFUSION_PNG)
    rpt.plot_reliability(bins, out / rpt.RELIABILITY_PNG, ece, raw_bins, ece_raw)
    rpt.write_report(out, report)
    say(f"evaluated {manifest.name} {manifest.version} on {len(docs)} docs "
        f"({report['precision']}, {report['docs_per_s']:.0f} docs/s): accuracy "
        f"{report['accuracy']:.4f}, macro_f1 {report['macro_f1']:.4f}, ECE {ece:.4f} "
        f"(T=1: {ece_raw:.4f}); report in {out}")
    return EvalResult(report, out)
