"""`docstream schema post|classification`: print a data contract as JSON Schema."""

from __future__ import annotations

import argparse
import json

from docstream.schemas import Classification, Post

SCHEMAS = {"post": Post, "classification": Classification}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of a data contract")
    p.add_argument("name", choices=sorted(SCHEMAS))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(json.dumps(SCHEMAS[args.name].model_json_schema(), indent=2))
    return 0
