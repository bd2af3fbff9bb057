"""Evaluation report files: confusion matrix and reliability PNGs, report.json, report.html."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from docstream.model.calibration import ReliabilityBin

matplotlib.use("Agg")

CONFUSION_PNG = "confusion.png"
RELIABILITY_PNG = "reliability.png"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], path: Path) -> None:
    """Confusion matrix heat map, rows = true, columns = predicted, with counts."""
    m = np.asarray(matrix)
    size = max(4.0, 0.9 * len(labels) + 2.0)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    row_sums = m.sum(axis=1, keepdims=True).clip(min=1)
    ax.imshow(m / row_sums, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            share = m[i, j] / row_sums[i, 0]
            ax.text(j, i, str(m[i, j]), ha="center", va="center",
                    color="white" if share > 0.5 else "black", fontsize=9)
    ax.set_title("Confusion matrix (colour: share of the true class)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability(
    bins: Sequence[ReliabilityBin],
    path: Path,
    ece: float,
    raw_bins: Sequence[ReliabilityBin] | None = None,
    raw_ece: float | None = None,
) -> None:
    """Reliability diagram: accuracy per confidence bin against the diagonal."""
    fig, ax = plt.subplots(figsize=(5.5, 5.0))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    width = bins[0].upper - bins[0].lower if bins else 0.1
    centres = [b.lower + width / 2 for b in bins if b.count]
    ax.bar(centres, [b.accuracy for b in bins if b.count], width=width * 0.9,
           color="tab:blue", alpha=0.7, label=f"calibrated (ECE {ece:.2%})")
    if raw_bins is not None and raw_ece is not None:
        used = [b for b in raw_bins if b.count]
        ax.plot([b.confidence for b in used], [b.accuracy for b in used], marker="o",
                color="tab:orange", linewidth=1, label=f"T = 1 (ECE {raw_ece:.2%})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page (the PNGs sit next to it) summarising `report`."""
    model = report["model"]
    title = f"{model['name']} {model['version']} on {report['data']['file']}"
    summary = _table(
        ["metric", "value"],
        [
            ["documents", report["n"]],
            ["accuracy", report["accuracy"]],
            ["macro-F1", report["macro_f1"]],
            ["ECE (calibrated)", report["ece"]],
            ["ECE (T = 1)", report["ece_uncalibrated"]],
            ["temperature", report["temperature"]],
            ["precision", report["precision"]],
            ["skipped rows", report["data"]["skipped"]],
        ],
    )
    per_class = _table(
        ["label", "precision", "recall", "F1", "support"],
        [[k, v["precision"], v["recall"], v["f1"], v["support"]]
         for k, v in report["per_class"].items()],
    )
    slices = []
    for name, values in report["slices"].items():
        gap = report["max_slice_gap"].get(name, {})
        rows = [[v, s["n"], s["accuracy"], s["macro_f1"]] for v, s in values.items()]
        gap_line = (
            f"<p>largest accuracy gap: {gap['gap']:.4f} ({html.escape(str(gap['best']))} vs "
            f"{html.escape(str(gap['worst']))}, slices with n &ge; {gap['min_n']})</p>"
            if gap.get("gap") is not None
            else "<p>largest accuracy gap: not enough slices of sufficient size</p>"
        )
        slices.append(f"<h3>{html.escape(name)}</h3>{gap_line}"
                      + _table(["value", "n", "accuracy", "macro-F1"], rows))
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}"
             "table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
             "td:first-child,th:first-child{text-align:left}")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p>model weights sha256 <code>{html.escape(model['weights_sha256'])}</code>; "
        f"data sha256 <code>{html.escape(report['data']['sha256'])}</code>, "
        f"split {html.escape(str(report['data']['split']))}</p>"
        f"<h2>Summary</h2>{summary}"
        f"<h2>Per class</h2>{per_class}"
        f"<h2>Confusion matrix</h2><img src='{CONFUSION_PNG}' alt='confusion matrix'>"
        f"<h2>Calibration</h2><img src='{RELIABILITY_PNG}' alt='reliability diagram'>"
        f"<h2>Slices</h2>{''.join(slices)}"
        "</body></html>\n"
    )


def write_report(directory: Path, report: dict[str, Any]) -> None:
    """Write report.json and report.html (the PNGs are written by the plot functions)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (directory / REPORT_HTML).write_text(render_html(report), encoding="utf-8")
