"""Accuracy of several trained artifacts together: the mean of their calibrated document
probabilities, as `docstream train --teacher A --teacher B …` averages its teachers.

    .venv/bin/python -m bench.ensemble --model runs/t0 --model runs/t1 [--data F] [--split test]

Each model alone and the ensemble are scored on the same documents (`docstream evaluate`'s
preprocessing and calibrated, chunk-aggregated probabilities), so the figures compare.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bench.data import ag_news_path
from docstream.model.predictor import pick_device
from docstream.training.data import read_data
from docstream.training.distill import teacher_average
from docstream.training.teachers import Teacher


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, action="append", required=True)
    p.add_argument("--data", type=Path, default=None, help="default: AG News")
    p.add_argument("--split", default="test")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    data = read_data(args.data or ag_news_path())
    rows = data.split(args.split)
    first = Teacher(args.model[0], [], pick_device(None))
    labels = first.manifest.labels
    truth = np.array([labels.index(r.label) for r in rows])
    texts = [r.raw_text() for r in rows]
    per_model = []
    results: dict[str, float] = {}
    for path in args.model:
        probs = Teacher(path, labels, pick_device(None)).probabilities(texts)
        per_model.append(probs)
        results[str(path)] = float((probs.argmax(axis=1) == truth).mean())
        print(f"{path}: {100 * results[str(path)]:.2f}%", flush=True)
    mean = teacher_average(per_model)
    results["ensemble"] = float((mean.argmax(axis=1) == truth).mean())
    print(f"ensemble of {len(args.model)}: {100 * results['ensemble']:.2f}% "
          f"on {len(rows):,} {args.split} documents")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
