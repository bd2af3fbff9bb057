"""`docstream audit`: check the audit log's hash chains (`verify`), show their heads (`head`).

`verify` exits 0 with one line ("verified N records in K chains ...") when every chain is
intact, 1 with one line per problem (the first broken record first: its seq, run, position
and what is wrong), 2 on an error (no database, a keyed chain without the key, a bad --head).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from docstream.errors import ConfigError
from docstream.store.audit_chain import AuditHead, HeadFile, audit_key_from_env, is_head_hash
from docstream.store.engine import check_reachable, default_url, make_readonly_engine


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="verify the audit log's hash chains (tamper evidence)",
                       description="The audit log is hash-chained (keyed with "
                       "$DOCSTREAM_AUDIT_KEY or $DOCSTREAM_AUDIT_KEY_FILE when set).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    v = actions.add_parser(
        "verify", help="walk the chains; exit 1 listing every record changed, deleted, "
        "inserted or reordered",
        description="Walk every audit chain (or those of --run) and check each record's hash, "
        "its link to the one before, and the chain's head in audit_heads; with --head, also "
        "against heads kept outside the database (a run's summary JSON, its "
        "--audit-head-out file, or a bare hash). Exit 0: intact; 1: problems, one line each; "
        "2: error.")
    v.add_argument("--head", action="append", default=[], metavar="HASH|FILE",
                   help="a head kept outside the database: a 64-hex hash, or a JSON file "
                   "(`docstream run --audit-head-out` or `--json`); repeatable")
    v.add_argument("--allow-unkeyed", action="store_true", help="with a key set, accept chains "
                   "written without one (checked as plain SHA-256)")
    h = actions.add_parser("head", help="print the chains' current heads (from the database)")
    h.add_argument("--json", action="store_true", help="print them as a head file (the format "
                   "of `docstream run --audit-head-out`)")
    for a in (v, h):
        a.add_argument("--db", metavar="URL", help="database URL (default $DOCSTREAM_DB or "
                       "sqlite:///docstream.db)")
        a.add_argument("--run", metavar="ID", help="only the chains of this run")
    v.set_defaults(func=verify)
    h.set_defaults(func=head)


def read_heads(values: list[str]) -> list[AuditHead | str]:
    """`--head` values: bare hashes, and the heads of JSON files (a head file or a run
    summary: {"audit_heads": [...]})."""
    heads: list[AuditHead | str] = []
    for value in values:
        if is_head_hash(value.lower()):
            heads.append(value.lower())
            continue
        path = Path(value)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"--head {value}: neither a 64-hex hash nor a readable file "
                              f"({e.strerror or e.__class__.__name__})") from e
        try:
            heads += HeadFile.model_validate_json(text).audit_heads
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise ConfigError(f"--head {value}: not a head file ({where}: {first['msg']}); "
                              "expected the JSON of `docstream run --audit-head-out`") from e
    return heads


def verify(args: argparse.Namespace) -> int:
    from docstream.store.audit_verify import verify as verify_chains

    heads = read_heads(args.head)
    key = audit_key_from_env()
    engine = make_readonly_engine(args.db or default_url())
    try:
        check_reachable(engine)
        result = verify_chains(engine, key, run_id=args.run, heads=heads,
                               allow_unkeyed=args.allow_unkeyed)
    finally:
        engine.dispose()
    if result.ok:
        print(result.summary())
        return 0
    for problem in result.problems:
        print(problem.line())
    return 1


def head(args: argparse.Namespace) -> int:
    from docstream.store.audit_verify import current_heads

    engine = make_readonly_engine(args.db or default_url())
    try:
        check_reachable(engine)
        rows = current_heads(engine, args.run)
    finally:
        engine.dispose()
    if args.json:
        heads = [AuditHead(chain=r.chain, head_hash=r.head_hash, length=r.length, keyed=r.keyed)
                 for r in rows if r.length > 0]
        print(HeadFile(run_id=args.run, audit_heads=heads).model_dump_json(indent=2))
        return 0
    for r in rows:
        print(f"{r.chain}  {r.length:>10,}  {r.head_hash}  {'keyed' if r.keyed else 'unkeyed'}  "
              f"{r.updated_at.isoformat() if r.updated_at else ''}")
    if not rows:
        print("no audit chains" + (f" for run {args.run}" if args.run else ""), file=sys.stderr)
    return 0


def write_head_file(path: str, run_id: str, heads: list[dict]) -> None:
    """The run's heads as a head file at `path` (written whole, then renamed into place)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_text(json.dumps({"run_id": run_id, "audit_heads": heads}, indent=2) + "\n",
                       encoding="utf-8")
        tmp.replace(target)
    except OSError as e:
        raise ConfigError(f"--audit-head-out {path}: cannot write the run's audit heads "
                          f"({e.strerror or e.__class__.__name__}); `docstream audit head "
                          f"--run {run_id} --json` prints them from the database") from e
