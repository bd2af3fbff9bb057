"""`docstream query`: read results through a read-only connection.

Give it the reader role's URL (`docstream db roles` prints it): the reader may SELECT
results, the audit log, runs, the registry and the reviews, and nothing else (no dead-letter
payloads, no reviewer tokens, no writes). Any other URL works too; the connection is read-only
whoever it logs in as.

Each result shows the model's label (`label`, from the latest model version that classified
the post) and the human label (`human_label` and `reviewer`, from the post's latest review;
empty when nobody reviewed it): a later model version never erases the human label.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from datetime import datetime
from typing import Any

from docstream.errors import ConfigError
from docstream.store.engine import check_reachable, default_url, make_readonly_engine
from docstream.store.query import query_results


def _iso(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from e


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("query", help="list results from the store (read-only)")
    p.add_argument("--db", metavar="URL", help="database URL, best the reader role's (see "
                   "`docstream db roles`); default $DOCSTREAM_READER_DB, else $DOCSTREAM_DB, "
                   "else sqlite:///docstream.db")
    p.add_argument("--label")
    p.add_argument("--since", type=_iso, metavar="ISO", help="processed at or after this time")
    p.add_argument("--min-score", type=float)
    p.add_argument("--needs-review", action="store_true", help="only results flagged for review")
    reviewed = p.add_mutually_exclusive_group()
    reviewed.add_argument("--reviewed", dest="reviewed", action="store_const", const=True,
                          help="only results a person reviewed (with a human label)")
    reviewed.add_argument("--not-reviewed", dest="reviewed", action="store_const", const=False,
                          help="only results nobody reviewed yet")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("--limit", type=int, default=100, help="at most N rows (0: all)")
    p.set_defaults(func=run)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def reader_url(db: str | None) -> str:
    """--db, else $DOCSTREAM_READER_DB (the reader role's URL), else the store's default."""
    return db or os.environ.get("DOCSTREAM_READER_DB") or default_url()


def run(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise ConfigError("--limit must be >= 0")
    url = reader_url(args.db)
    since = args.since
    if since is not None and since.tzinfo is not None and url.startswith("sqlite"):
        since = since.replace(tzinfo=None) - (since.utcoffset() or since - since)
    engine = make_readonly_engine(url)
    try:
        check_reachable(engine)
        rows = query_results(
            engine, label=args.label, since=since, min_score=args.min_score,
            needs_review=True if args.needs_review else None, reviewed=args.reviewed,
            limit=args.limit or None,
        )
    finally:
        engine.dispose()
    rows = [{k: _plain(v) for k, v in r.items()} for r in rows]
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=2)
        print()
    elif args.format == "csv":
        if rows:
            w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        _table(rows)
    return 0


def _table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    cols = ["source", "id", "label", "score", "needs_review", "model_version", "processed_at",
            "human_label", "reviewer"]
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*[f"{r[c]:.3f}" if c == "score" else "-" if r[c] is None else str(r[c])
                        for c in cols])
    Console(width=160).print(table)
    print(f"{len(rows)} row(s)")
