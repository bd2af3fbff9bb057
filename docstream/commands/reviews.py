"""`docstream reviews export`: human labels as training data for `docstream train`.

Each reviewed post becomes `{"id", "text", "label", "split"}`: its latest review's label and
its stored (redacted) text. With `--merge FILE`, the rows of an existing training file come
first; a row with the same id as a reviewed post is replaced by the review (people correct
the data) and keeps its split, every other row is kept as is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from docstream.errors import ConfigError
from docstream.store.engine import check_reachable, default_url, make_readonly_engine
from docstream.store.reviews import reviewed_texts


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reviews", help="export human reviews as training data")
    p.add_argument("--db", metavar="URL", help="store URL, the reader role's is enough "
                   "(default $DOCSTREAM_READER_DB, else $DOCSTREAM_DB, else sqlite)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    e = actions.add_parser("export", help="write the reviewed posts as JSON Lines for "
                           "`docstream train`")
    e.add_argument("--out", required=True, metavar="FILE.jsonl")
    e.add_argument("--merge", metavar="FILE", help="a training file (JSON Lines with id, text, "
                   "label, split) to merge with: reviews replace its rows of the same id")
    e.add_argument("--split", default="train", help="split of reviewed posts new to the "
                   "merged file (default train); one that replaces a row keeps that row's split")
    e.add_argument("--db", metavar="URL", default=argparse.SUPPRESS,
                   help="as `docstream reviews --db URL`")
    p.set_defaults(func=run)


def _merged_rows(path: str) -> list[dict[str, Any]]:
    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ConfigError(f"--merge {path} line {n}: not JSON ({e.msg})") from e
                if not isinstance(row, dict) or not {"id", "text", "label"} <= row.keys():
                    raise ConfigError(f"--merge {path} line {n}: needs id, text and label")
                rows.append(row)
    except OSError as e:
        raise ConfigError(f"cannot read --merge {path}: {e.strerror}") from e
    return rows


def run(args: argparse.Namespace) -> int:
    engine = make_readonly_engine(args.db or os.environ.get("DOCSTREAM_READER_DB")
                                  or default_url())
    skipped: list[tuple[str, str]] = []
    try:
        check_reachable(engine)
        # one row per reviewed post: posts are (source, id), and two sources may use the
        # same id (keyed by id alone, one of their human labels would be lost)
        reviewed = [{"id": r.doc_id, "text": r.text, "label": r.label, "split": args.split}
                    for r in reviewed_texts(engine, skipped=skipped)]
    finally:
        engine.dispose()
    reviewed_ids = {row["id"] for row in reviewed}
    base = _merged_rows(args.merge) if args.merge else []
    replaced = sum(1 for row in base if str(row["id"]) in reviewed_ids)
    # a corrected row keeps its split: a validation row stays one, so retrains compare
    kept_split = {str(row["id"]): row["split"] for row in base
                  if str(row["id"]) in reviewed_ids and row.get("split")}
    for row in reviewed:
        row["split"] = kept_split.get(row["id"], row["split"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in base:
            if str(row["id"]) not in reviewed_ids:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        for row in reviewed:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    print(f"exported {len(reviewed)} reviewed posts"
          + (f" merged with {len(base) - replaced} rows of {args.merge} ({replaced} replaced "
             "by reviews)" if args.merge else "") + f" to {out}", file=sys.stderr)
    if skipped:
        print(f"skipped {len(skipped)} reviewed posts whose text the store does not hold "
              "(run with --store-text off)", file=sys.stderr)
    return 0
