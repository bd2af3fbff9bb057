"""What `docstream train --windows-per-doc K` saves and costs on long documents.

    .venv/bin/python -m bench.window_sampling [--per-doc 1,2] [--articles 8] [--work DIR]

AG News has no long documents, so long ones are built from it: `--articles` train articles
of one label, shuffled with a fixed seed, joined into one text (8 articles are ~3.5 model
windows of 128 tokens, like a 400-word news article). The test split is built the same way
from the test articles. Each setting trains with `docstream train --mode lora` (the
default mode; seed 0, no time limit), once on every window and once per K, and is scored
by `docstream evaluate` on the long test documents and on the single test articles (every
window the model can meet, one at a time). Run it on an idle machine: the times are
wall-clock seconds of the whole training command.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.data import ag_news_path

REPO = Path(__file__).resolve().parents[1]
LABELS = "World,Sports,Business,Sci/Tech"


def long_documents(src: Path, out: Path, articles: int, seed: int = 0) -> dict[str, int]:
    """Write documents of `articles` same-label articles per split; returns docs per split."""
    by: dict[tuple[str, str], list[str]] = {}
    with open(src, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            by.setdefault((row["split"], row["label"]), []).append(row["text"])
    rng = random.Random(seed)
    counts: dict[str, int] = {}
    with open(out, "w", encoding="utf-8") as f:
        for (split, label), texts in sorted(by.items()):
            rng.shuffle(texts)
            for i in range(0, len(texts) - articles + 1, articles):
                doc = {"id": f"long-{split}-{label}-{i // articles}", "split": split,
                       "label": label, "text": "\n\n".join(texts[i : i + articles])}
                f.write(json.dumps(doc) + "\n")
                counts[split] = counts.get(split, 0) + 1
    return counts


def _docstream(*args: str) -> str:
    done = subprocess.run([str(Path(sys.executable).with_name("docstream")), *args], cwd=REPO,
                          check=True, capture_output=True, text=True)
    return done.stdout + done.stderr


def _accuracy(report: Path) -> float:
    return float(json.loads((report / "report.json").read_text())["accuracy"])


def one(long: Path, work: Path, per_doc: int | None) -> dict[str, Any]:
    """Train with `per_doc` windows per document per epoch (None: all) and score it."""
    tag = f"k{per_doc}" if per_doc else "all"
    out = work / f"model-{tag}"
    args = ["train", "--data", str(long), "--out", str(out), "--mode", "lora", "--seed", "0",
            "--labels", LABELS, "--limit-minutes", "0", "--no-progress"]
    if per_doc:
        args += ["--windows-per-doc", str(per_doc)]
    t0 = time.perf_counter()
    log = _docstream(*args)
    train_s = time.perf_counter() - t0
    (work / f"train-{tag}.log").write_text(log)
    windows = re.search(r"\(([\d,]+) of ([\d,]+) windows per epoch\)", log)
    data = re.search(r"data: (\d+) train docs \((\d+) chunks\)", log)
    assert data is not None, log[-2000:]
    n_windows = int(data.group(2))
    per_epoch = int(windows.group(1).replace(",", "")) if windows else n_windows
    _docstream("evaluate", "--model", str(out), "--data", str(long),
               "--report", str(work / f"report-long-{tag}"))
    _docstream("evaluate", "--model", str(out), "--data", str(ag_news_path()),
               "--report", str(work / f"report-articles-{tag}"))
    return {"windows_per_doc": per_doc, "train_docs": int(data.group(1)),
            "train_windows": n_windows, "windows_per_epoch": per_epoch,
            "train_s": round(train_s, 1),
            "accuracy_long_test": _accuracy(work / f"report-long-{tag}"),
            "accuracy_article_test": _accuracy(work / f"report-articles-{tag}")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-doc", default="1,2", help="K values to compare with every window")
    p.add_argument("--articles", type=int, default=8, help="articles per long document")
    p.add_argument("--work", type=Path, default=Path("runs/window-sampling"))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if not ag_news_path().is_file():
        print(f"needs AG News at {ag_news_path()}", file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    long = args.work / "long.jsonl"
    counts = long_documents(ag_news_path(), long, args.articles)
    print(f"long documents of {args.articles} AG News articles: {counts}", flush=True)
    results = []
    for k in [None, *(int(x) for x in args.per_doc.split(","))]:
        r = one(long, args.work, k)
        results.append(r)
        print(json.dumps(r), flush=True)
    base = results[0]
    print("\nK | windows/epoch | train s | x faster | long-doc test | article test")
    for r in results:
        print(f"{r['windows_per_doc'] or 'all'} | {r['windows_per_epoch']:,} | {r['train_s']} | "
              f"{base['train_s'] / r['train_s']:.2f} | {100 * r['accuracy_long_test']:.2f}% | "
              f"{100 * r['accuracy_article_test']:.2f}%")
    if args.json:
        args.json.write_text(json.dumps({"articles": args.articles, "docs": counts,
                                         "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
