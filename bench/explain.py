"""`python -m bench.explain`: what explanations cost and whether they mean anything.

Measures, on the AG News test split (../shared; generated posts from tests/news_posts.py
without it, said on stderr), with the bundled model:

- convergence delta and explanations/s for each n_steps asked (`--n-steps 16,32,50`);
- faithfulness: deleting a post's 5 highest-attributed words must lower the predicted
  class's probability more than deleting 5 random words (seeded);
- the agreement of predicted labels between the CPU default (dynamic int8 without AMX,
  bf16 autocast with it; the Predictor) and the fp32 copy explanations run on, and the
  largest |probability difference|.

tests/model/test_faithfulness.py runs `deletion_drops` and `int8_agreement` on generated
posts. Prints one JSON document (and writes it with --json PATH).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import AG_NEWS_SOURCE, GENERATED_SOURCE, ag_news_path, generated_test_split


def delete_words(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """`text` without the characters of `spans` (a space left where a word was)."""
    out = text
    for start, end in sorted(spans, reverse=True):
        out = out[:start] + " " + out[end:]
    return out


def deletion_drops(explainer: Any, texts: Sequence[str], explanations: Sequence[Any],
                   k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per text: the drop of the target's probability when its `k` highest-attributed words
    are deleted, and when `k` random words are (seeded); both on the explainer's fp32 copy
    through the same preprocessing. Texts with fewer than 2k words are left out."""
    rng = random.Random(seed)
    keep, top, rand = [], [], []
    for i, (text, e) in enumerate(zip(texts, explanations, strict=True)):
        words = [w for w in e.words if w.field == "text"]
        if len(words) < 2 * k:
            continue
        best = sorted(words, key=lambda w: -w.raw)[:k]
        picked = rng.sample(words, k)
        keep.append(i)
        top.append(delete_words(text, [(w.start, w.end) for w in best]))
        rand.append(delete_words(text, [(w.start, w.end) for w in picked]))
    if not keep:
        return np.zeros(0), np.zeros(0)
    probs = explainer.probabilities(top + rand)
    labels = explainer.labels
    before = np.array([explanations[i].target_prob for i in keep])
    target = np.array([labels.index(explanations[i].target) for i in keep])
    n = len(keep)
    after_top = probs[np.arange(n), target]
    after_rand = probs[n + np.arange(n), target]
    return before - after_top, before - after_rand


def int8_agreement(loaded: Any, texts: Sequence[str], precision: str = "int8"
                   ) -> dict[str, float]:
    """Labels and probabilities of the Predictor in `precision` (int8: the CPU default
    without AMX; bf16 with it) against the fp32 copy of the same weights explanations run
    on, through the same Preprocessor and DocClassifier."""
    from docstream.model.build import build_classifier
    from docstream.model.tokenizer import load_tokenizer
    from docstream.preprocess.preprocessor import Prepared, Preprocessor, RawText

    pre = Preprocessor(loaded.manifest.preprocess, load_tokenizer())
    prepared = pre.prepare([RawText(t) for t in texts])
    chunks = [p.chunks for p in prepared if isinstance(p, Prepared)]
    fast = build_classifier(loaded.manifest, loaded.module, device="cpu",
                            precision=precision).probabilities(chunks)
    p32 = build_classifier(loaded.manifest, loaded.module, device="cpu",
                           precision="fp32").probabilities(chunks)
    return {"n": len(chunks),
            "label_agreement": float((fast.argmax(1) == p32.argmax(1)).mean()),
            "max_abs_prob_diff": float(np.abs(fast - p32).max()),
            "mean_abs_prob_diff": float(np.abs(fast - p32).mean())}


def texts_for(limit: int, seed: int) -> tuple[list[str], str]:
    path = ag_news_path()
    if path.is_file():
        from bench.data import load_test_split

        rows = load_test_split(path)
        source = AG_NEWS_SOURCE.split(" +")[0]
    else:
        print(f"no AG News at {path}: generated posts (tests/news_posts.py)", file=sys.stderr)
        rows = generated_test_split(per_label=max(limit // 4 + 1, 50), seed=seed)
        source = GENERATED_SOURCE.split(" +")[0]
    rows = random.Random(seed).sample(rows, min(limit, len(rows)))
    return [r["text"] for r in rows], source


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.explain", description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=200, help="posts (default 200)")
    p.add_argument("--n-steps", default="32,50", help="IG steps to measure (default 32,50); "
                   "faithfulness uses the last")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, metavar="PATH")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from bench.measure import foreign_cpu
    from docstream.model.bundled import bundled_model_dir
    from docstream.model.explain import Explainer
    from docstream.model.loader import load_model

    torch.set_num_threads(args.threads)
    texts, source = texts_for(args.limit, args.seed)
    loaded = load_model(bundled_model_dir())
    result: dict[str, Any] = {"data": source, "posts": len(texts), "threads": args.threads,
                              "busy_before": foreign_cpu(1.0), "n_steps": {}}
    steps = [int(s) for s in args.n_steps.split(",")]
    explanations: list[Any] = []
    explainer: Any = None
    for n in steps:
        explainer = Explainer(loaded, n_steps=n)
        explainer.explain_many(texts[:4])  # warm-up
        t0 = time.perf_counter()
        explanations = explainer.explain_many(texts)
        seconds = time.perf_counter() - t0
        deltas = np.array([w.delta for e in explanations for w in e.windows])
        result["n_steps"][n] = {
            "explanations_per_s": round(len(texts) / seconds, 2),
            "mean_abs_delta": round(float(np.abs(deltas).mean()), 5),
            "p95_abs_delta": round(float(np.quantile(np.abs(deltas), 0.95)), 5),
            "max_abs_delta": round(float(np.abs(deltas).max()), 5)}
        print(f"n_steps {n}: {result['n_steps'][n]}", file=sys.stderr)
    result["baseline"] = explainer.settings.baseline
    top, rand = deletion_drops(explainer, texts, explanations, seed=args.seed)
    result["faithfulness"] = {"n_steps": steps[-1], "posts": len(top),
                              "mean_drop_top5": round(float(top.mean()), 4),
                              "mean_drop_random5": round(float(rand.mean()), 4),
                              "share_top_beats_random": round(float((top > rand).mean()), 4)}
    result["int8_vs_fp32"] = int8_agreement(loaded, texts)
    result["bf16_vs_fp32"] = int8_agreement(loaded, texts, "bf16")
    result["busy_after"] = foreign_cpu(1.0)
    doc = json.dumps(result, indent=2)
    print(doc)
    if args.json:
        args.json.write_text(doc + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
