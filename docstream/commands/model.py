"""`docstream model register|list|promote`: the model registry in the store."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from docstream.errors import ConfigError
from docstream.model.artifact import read_manifest
from docstream.store import registry
from docstream.store.engine import check_reachable, default_url, make_engine
from docstream.store.migrate import upgrade


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="the model registry: register, list, promote")
    p.add_argument("--db", metavar="URL", help="store URL (default $DOCSTREAM_DB or sqlite)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    r = actions.add_parser("register", help="register a model artifact directory")
    r.add_argument("path")
    r.add_argument("--promote", action="store_true", help="also make it the production version")
    actions.add_parser("list", help="list registered versions")
    pr = actions.add_parser("promote", help="make NAME@VERSION the production version")
    pr.add_argument("ref", metavar="NAME@VERSION")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    engine = make_engine(args.db or default_url())
    check_reachable(engine)
    upgrade(engine)
    try:
        if args.action == "register":
            path = Path(args.path).resolve()
            m = read_manifest(path)
            mv = registry.register(engine, name=m.name, version=m.version, path=str(path),
                          weights_sha256=m.weights_sha256, metrics=m.metrics or None)
            if args.promote:
                mv = registry.promote(engine, m.name, m.version)
            print(f"registered {mv.name}@{mv.version} ({mv.stage}) -> {mv.path}")
        elif args.action == "promote":
            name, _, version = args.ref.partition("@")
            if not name or not version:
                raise ConfigError(f"expected NAME@VERSION, got {args.ref!r}")
            mv = registry.promote(engine, name, version)
            print(f"promoted {mv.name}@{mv.version} to production")
        else:
            rows = [
                {"name": v.name, "version": v.version, "stage": v.stage, "path": v.path,
                 "weights_sha256": v.weights_sha256[:12],
                 "accuracy": (v.metrics or {}).get("accuracy"),
                 "registered_at": v.registered_at.isoformat()}
                for v in registry.list_versions(engine)
            ]
            print(json.dumps(rows, indent=2))
    finally:
        engine.dispose()
    return 0
