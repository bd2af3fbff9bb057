"""The benchmark's one input: the AG News test split plus long concatenated documents.

Every row reads the same JSON Lines file, written once per benchmark run. 5% of the documents
are "long": 8 test posts of one label joined into one text, so that chunking and chunk
aggregation are exercised (a long document is several 128-token model windows).

AG News is read from `../shared` beside the repository (or $DOCSTREAM_SHARED); this module is
the benchmark's one owner of that path. The full benchmark needs it. A quick run on a clone
without it falls back to the generated news posts of the tests (tests/news_posts.py, written
for this project) and says so in one line: its figures are a smoke test, not comparable with
the README's.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LONG_SHARE = 0.05
POSTS_PER_LONG_DOC = 8
FULL_SHORT_DOCS = 7600  # the whole AG News test split
AG_NEWS_SOURCE = "AG News test split + long docs (8 posts each)"
GENERATED_SOURCE = "generated news posts (tests/news_posts.py) + long docs (8 posts each)"
GENERATED_PER_LABEL = 250  # 1,000 posts: more than a quick run samples


def shared_dir() -> Path:
    """../shared relative to the repository root, or $DOCSTREAM_SHARED."""
    return Path(os.environ.get("DOCSTREAM_SHARED") or REPO.parent / "shared")


def ag_news_path() -> Path:
    return shared_dir() / "data" / "ag_news" / "ag_news.jsonl"


def generated_test_split(per_label: int = GENERATED_PER_LABEL, seed: int = 0) -> list[dict]:
    """Generated, labelled news posts (World/Sports/Business/Sci/Tech) as test rows."""
    from tests.news_posts import labelled_rows  # the repository's tests package

    return labelled_rows(train_per_label=0, test_per_label=per_label, seed=seed, long_share=0.0)


@dataclass(frozen=True)
class PostRows:
    """The posts the benchmark documents are made of, and where they came from."""

    rows: list[dict]
    source: str
    notice: str | None = None  # one line for stderr when the data is not AG News


def post_rows(allow_generated: bool) -> PostRows:
    """AG News test rows; without ../shared, generated posts if `allow_generated`."""
    path = ag_news_path()
    if path.is_file() or not allow_generated:
        return PostRows(load_test_split(path), AG_NEWS_SOURCE)
    rows = generated_test_split()
    return PostRows(rows, GENERATED_SOURCE,
                    f"no AG News at {path} (set DOCSTREAM_SHARED): quick run on {len(rows)} "
                    "generated posts from tests/news_posts.py; figures not comparable")


def load_test_split(path: Path | None = None) -> list[dict]:
    """The 7,600 AG News test rows, in their original order."""
    path = path or ag_news_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"AG News data not found at {path}; set DOCSTREAM_SHARED to the folder holding "
            "data/ag_news/ag_news.jsonl"
        )
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row.get("split") == "test":
                rows.append(row)
    if not rows:
        raise ValueError(f"{path} has no rows with split == 'test'")
    return rows


@dataclass(frozen=True)
class BenchData:
    path: Path
    n_docs: int
    n_short: int
    n_long: int
    source: str = AG_NEWS_SOURCE
    notice: str | None = None


def make_docs(limit: int | None, seed: int = 0, test_rows: list[dict] | None = None) -> list[dict]:
    """The benchmark documents: `limit` docs (None: all 7,600 test posts + 400 long docs).

    With a limit, 95% are a seeded sample of test posts and 5% long docs. Short docs keep
    their AG News id and label; a long doc's label is the shared label of its 8 posts.
    """
    rows = test_rows if test_rows is not None else load_test_split()
    rng = random.Random(seed)
    if limit is None:
        short = list(rows)
        n_long = round(len(short) * LONG_SHARE / (1 - LONG_SHARE))
    else:
        if limit < 2:
            raise ValueError(f"--limit must be >= 2, got {limit}")
        n_long = max(1, round(limit * LONG_SHARE))
        short = rng.sample(rows, min(limit - n_long, len(rows)))
    by_label: dict[str, list[dict]] = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r)
    labels = sorted(by_label)
    docs = [{"id": r["id"], "text": r["text"], "label": r["label"]} for r in short]
    for i in range(n_long):
        label = labels[i % len(labels)]
        parts = rng.sample(by_label[label], POSTS_PER_LONG_DOC)
        docs.append({"id": f"bench-long-{i + 1:05d}", "text": " ".join(p["text"] for p in parts),
                     "label": label})
    rng.shuffle(docs)  # long docs spread through the file, as they would arrive
    return docs


def write_data(out_dir: Path, limit: int | None, seed: int = 0,
               allow_generated: bool = False) -> BenchData:
    """Write the benchmark documents; `allow_generated`: fall back to generated posts when
    AG News is not available (quick runs)."""
    source = post_rows(allow_generated)
    docs = make_docs(limit, seed, source.rows)
    path = out_dir / "bench_docs.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    n_long = sum(d["id"].startswith("bench-long-") for d in docs)
    return BenchData(path, len(docs), len(docs) - n_long, n_long, source.source, source.notice)


def read_docs(path: Path | str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def is_long(doc: dict) -> bool:
    return doc["id"].startswith("bench-long-")
