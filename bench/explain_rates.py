"""What explanations cost the job: `docstream run` on the same posts with `--explain off`
and `--explain review`, one after the other, in one process each.

    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.explain_rates [--limit 2000] [--threshold X]

Reports, from each run's summary: the main path's docs/s once the model is up (the job's
time ends with its last write), the share flagged, and for `review` the explanations stored,
skipped (backlog full) and their rate, plus the wall time including the drain of the
backlog after the last write. AG News test posts (../shared); generated posts without it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.data import post_rows


def run(posts: Path, db: str, explain: str, threshold: float | None) -> dict:
    cmd = [sys.executable, "-m", "docstream.cli", "run", "--source", str(posts), "--sink", db,
           "--explain", explain, "--no-progress", "--json"]
    if threshold is not None:
        cmd += ["--review-threshold", str(threshold)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - t0
    summary = json.loads(out.stdout)
    summary["wall_s"] = round(wall, 1)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--threshold", type=float, help="review threshold (default: the model's)")
    args = ap.parse_args()
    data = post_rows(allow_generated=True)
    if data.notice:
        print(data.notice, file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        posts = Path(tmp) / "posts.jsonl"
        with posts.open("w", encoding="utf-8") as fh:
            for row in data.rows[: args.limit]:
                fh.write(json.dumps({"id": str(row["id"]), "source": "bench",
                                     "text": row["text"]}) + "\n")
        rows = {}
        for mode in ("off", "review"):
            rows[mode] = run(posts, f"sqlite:///{tmp}/{mode}.db", mode, args.threshold)
    off, review = rows["off"], rows["review"]
    ex = review.get("explanations") or {}
    print(f"posts: {off['inputs']} ({data.source}); flagged {100 * review['needs_review_share']:.1f}%")
    print(f"{'mode':<8} {'docs/s (main path)':>19} {'wall s':>8}  explanations")
    print(f"{'off':<8} {off['docs_per_s']:>19.1f} {off['wall_s']:>8.1f}  -")
    print(f"{'review':<8} {review['docs_per_s']:>19.1f} {review['wall_s']:>8.1f}  "
          f"{ex.get('explained', 0)} stored, {ex.get('skipped', 0)} skipped, "
          f"{ex.get('per_s', 0):.2f}/s in the worker")
    ratio = review["docs_per_s"] / off["docs_per_s"] if off["docs_per_s"] else 0.0
    print(f"main path with --explain review: {ratio:.3f} x off "
          f"(slowdown {100 * (1 - ratio):.1f}% for {100 * review['needs_review_share']:.1f}% flagged)")


if __name__ == "__main__":
    main()
