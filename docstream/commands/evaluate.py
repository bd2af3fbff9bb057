"""`docstream evaluate`: score a model on labelled data; write report.json and report.html."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evaluate` subcommand."""
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a model artifact on labelled JSONL data",
        description=(
            "Classify labelled documents exactly as `run` does (same preprocessing, calibrated "
            "chunk-aggregated predictions) and write report.json, report.html, a confusion "
            "matrix and a reliability diagram."
        ),
    )
    p.add_argument("--model", type=Path, default=None,
                   help="model artifact directory (default: the bundled news-topic model)")
    p.add_argument("--data", required=True, type=Path, help="labelled JSONL file")
    p.add_argument("--split", default="test",
                   help="split to score (default test; a file without splits: all rows)")
    p.add_argument("--text-field", default="text")
    p.add_argument("--label-field", default="label")
    p.add_argument("--split-field", default="split")
    p.add_argument("--title-field", default="title", help="optional title field ('' to ignore)")
    p.add_argument("--kind", choices=["news", "social"], default=None,
                   help="force news or social cleaning (default: each row's `kind`, else news)")
    p.add_argument("--slice-by", action="append", default=[], metavar="FIELD",
                   help="report metrics per value of FIELD (top-level or metadata); repeatable")
    p.add_argument("--report", required=True, type=Path, help="directory for the report files")
    p.add_argument("--min-accuracy", type=float, default=None, metavar="X",
                   help="exit 1 if accuracy is below X (a fraction, e.g. 0.9)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "int8"], default="auto")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: $DOCSTREAM_TORCH_THREADS, else every core; "
                        "1 on a busy machine of <= 2 cores)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="score only the first N rows of the split")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate; 1 when below --min-accuracy, else 0."""
    from docstream.commands.train import quiet_transformers
    from docstream.training.evaluate import evaluate

    quiet_transformers()

    def note(msg: str) -> None:
        print(msg, file=sys.stderr)

    result = evaluate(
        args.data,
        args.report,
        model_dir=args.model,
        split=args.split or None,
        text_field=args.text_field,
        label_field=args.label_field,
        split_field=args.split_field,
        title_field=args.title_field or None,
        kind=args.kind,
        slice_by=args.slice_by,
        precision=args.precision,
        limit=args.limit,
        threads=args.threads,
        note=note,
    )
    r = result.report
    print(
        f"{r['model']['name']} {r['model']['version']}: accuracy {r['accuracy']:.4f}, "
        f"macro_f1 {r['macro_f1']:.4f}, ECE {r['ece']:.4f}, n {r['n']} -> "
        f"{result.directory / 'report.html'}"
    )
    if args.min_accuracy is not None and r["accuracy"] < args.min_accuracy:
        print(
            f"docstream evaluate: accuracy {r['accuracy']:.4f} is below --min-accuracy "
            f"{args.min_accuracy:.4f}",
            file=sys.stderr,
        )
        return 1
    return 0
