"""`docstream reviewers add|list|revoke`: who may review (tokens; only their hash is kept).

Run it with the owner's (or an administrator's) URL: the writer, reader and reviewer roles
may not change the reviewers table.
"""

from __future__ import annotations

import argparse

from docstream.store import reviews
from docstream.store.engine import check_reachable, default_url, make_engine
from docstream.store.migrate import upgrade


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reviewers", help="add, list or revoke reviewers (review-page sign-in)")
    p.add_argument("--db", metavar="URL", help="store URL, the owner's on PostgreSQL (default "
                   "$DOCSTREAM_DB or sqlite:///docstream.db)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("add", help="add a reviewer and print their token (shown once)")
    a.add_argument("name")
    a.add_argument("--rotate", action="store_true", help="give an existing reviewer a new "
                   "token (the old one stops working)")
    actions.add_parser("list", help="list reviewers (never their tokens)")
    r = actions.add_parser("revoke", help="end a reviewer's token now")
    r.add_argument("name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    engine = make_engine(args.db or default_url())
    try:
        check_reachable(engine)
        upgrade(engine)
        if args.action == "add":
            token = reviews.add_reviewer(engine, args.name, rotate=args.rotate)
            print(token)
            print(f"# the token of reviewer {args.name}: shown once, only its hash is stored; "
                  "sign in with it on the review pages, or send it as "
                  "`Authorization: Bearer TOKEN` to POST /api/reviews")
        elif args.action == "revoke":
            reviews.revoke_reviewer(engine, args.name)
            print(f"revoked {args.name}: their token and sessions no longer work; their "
                  "reviews stay")
        else:
            for r in reviews.list_reviewers(engine):
                state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
                print(f"{r.name}\tadded {r.created_at:%Y-%m-%d %H:%M}\t{state}")
    finally:
        engine.dispose()
    return 0
