"""`docstream replay`: send stored dead letters back through the job after a fix."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from docstream.errors import ConfigError
from docstream.model.bundled import bundled_model_dir
from docstream.store.engine import default_url


def _iso(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time "
                                         "(e.g. 2026-12-03T10:00)") from e


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay", help="send stored dead letters back through the job after a fix",
        description="Replay open dead letters from their unredacted originals (the source file "
        "line, or Kafka's .dlq topic / the topic itself). By default they run through the batch "
        "job here, at their original positions: a success writes its result and marks the "
        "dead letter resolved; the audit log records the replay.",
    )
    p.add_argument("--db", metavar="URL", help="the store (default $DOCSTREAM_DB or "
                   "sqlite:///docstream.db)")
    p.add_argument("--reason", action="append", default=[], metavar="R",
                   help="only dead letters with this reason code; repeatable")
    p.add_argument("--since", type=_iso, metavar="ISO", help="only those last seen since then")
    p.add_argument("--limit", type=int, help="at most N dead letters")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--to", metavar="kafka://HOST:PORT/TOPIC", help="publish the originals "
                       "to this topic (header docstream.replay_of) for a running stream job")
    where.add_argument("--out", type=Path, metavar="FILE.jsonl",
                       help="write the originals to this file instead")
    p.add_argument("--model", metavar="PATH|NAME@VERSION|NAME@production|noop",
                   help="model for an in-process replay (default: the bundled model)")
    p.add_argument("--run-id", help="run id of the replay (default: replay-<random>)")
    p.add_argument("--dry-run", action="store_true", help="only say what would be replayed")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uuid

    from docstream.pipelines.model_source import resolve_model
    from docstream.pipelines.options import RunSettings
    from docstream.pipelines.replay import collect, run_replay, send_to_kafka, write_jsonl

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    db = args.db or default_url()
    found = collect(db, reasons=args.reason, since=args.since, limit=args.limit)
    report: dict[str, object] = found.as_dict()
    if args.dry_run or not found.inputs:
        report["replayed"] = 0
    elif args.to:
        report["replayed"] = send_to_kafka(found, args.to)
        report["to"] = args.to
    elif args.out:
        report["replayed"] = write_jsonl(found, args.out)
        report["out"] = str(args.out)
    else:
        model_dir = resolve_model(args.model, db) if args.model else str(bundled_model_dir())
        settings = RunSettings(sources=["replay"], sink=db, model_dir=model_dir,
                               run_id=args.run_id or f"replay-{uuid.uuid4().hex[:12]}",
                               progress=False)
        summary = run_replay(settings, found).as_dict()
        report.update(replayed=len(found.inputs), run_id=summary["run_id"],
                      classified=summary["classified"], still_dead=summary["dead_letters"],
                      dead_by_reason=summary["dead_by_reason"])
    report["not_found"] = dict(found.missing)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    out = sys.stdout
    print(f"replay: {found.selected:,} open dead letter(s) selected, {len(found.inputs):,} "
          f"original(s) found", file=out)
    for why, n in found.missing.items():
        print(f"  not found ({why}): {n:,}", file=out)
    if "classified" in report:
        print(f"  run {report['run_id']}: {report['classified']:,} now classified (their dead "
              f"letters resolved), {report['still_dead']:,} failed again", file=out)
    elif args.dry_run:
        print("  dry run: nothing sent", file=out)
    elif "to" in report:
        print(f"  {report['replayed']:,} sent to {args.to}", file=out)
    elif "out" in report:
        print(f"  {report['replayed']:,} written to {args.out}", file=out)
    return 0
