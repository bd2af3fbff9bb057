"""The `docstream` command line."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from docstream.errors import DocstreamError

COMMANDS = ("run", "query", "replay", "schema", "produce", "train", "evaluate", "model", "db",
            "audit", "serve", "reviewers", "reviews", "explain")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docstream",
        description="Classify news and social posts from files or Kafka into a SQL store.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"docstream.commands.{name.replace('-', '_')}")
        module.register(sub)
    return parser


_INFRASTRUCTURE = ("sqlalchemy.", "psycopg", "sqlite3", "kafka.", "alembic.")


def mask_secrets(text: str) -> str:
    """Passwords in URLs and DSNs hidden (the store's masking, imported only when needed)."""
    from docstream.store.masking import mask_secrets as mask

    return mask(text)


def one_line(error: BaseException) -> str:
    """The first line of an error's message (SQLAlchemy appends the SQL and a link)."""
    text = str(error).strip()
    return text.splitlines()[0].strip() if text else error.__class__.__name__


def is_infrastructure_error(error: BaseException) -> bool:
    """A database, broker or OS failure (not a bug in docstream)."""
    return isinstance(error, OSError) or any(
        cls.__module__.startswith(_INFRASTRUCTURE) for cls in type(error).__mro__
        if cls is not BaseException)


_NOISE = ("apitools not found", "Discarding unparseable args", "Make sure that locally built")


def _quiet_beam_noise(record: logging.LogRecord) -> bool:
    """Drop Beam's start-up chatter that says nothing about this job."""
    message = str(record.msg)
    return not any(message.startswith(n) for n in _NOISE)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args_list:  # everything after `--` goes to Beam untouched
        cut = args_list.index("--")
        args_list, extra = args_list[:cut], args_list[cut + 1 :]
    parser = build_parser()
    if not args_list:
        args_list = ["run"]  # no arguments: the main job on embedded defaults
    args = parser.parse_args(args_list)
    args.beam_args = extra
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.verbose == 0:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_quiet_beam_noise)
        # kafka-python logs every failed connection attempt; docstream says it once itself
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except DocstreamError as e:
        print(f"docstream {args.command}: error: {mask_secrets(one_line(e))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `docstream query | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"docstream {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        # A connection or configuration failure that a lower layer did not word itself:
        # still one line (the traceback with -v), never a password.
        if args.verbose or not is_infrastructure_error(e):
            raise
        print(f"docstream {args.command}: error: {e.__class__.__name__}: "
              f"{mask_secrets(one_line(e))} (-v shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
