"""`docstream produce`: publish JSON Lines files to a Kafka topic, keyed by post id."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys

from docstream.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "produce", help="publish JSON Lines posts to a Kafka topic",
        description="Publish each non-blank line of FILE(s) as one message, keyed by the post's "
        "id. Lines are sent as they are: a line that is not a valid post is sent unkeyed, so "
        "the job's dead-lettering can be shown. The topic is created when missing.",
    )
    p.add_argument("files", nargs="+", metavar="FILE.jsonl")
    p.add_argument("--to", required=True, metavar="kafka://HOST:PORT/TOPIC",
                   help="broker and topic, e.g. kafka://127.0.0.1:9092/posts")
    p.add_argument("--partitions", type=int, default=3,
                   help="partitions of the topic when it has to be created (default 3)")
    p.add_argument("--rate", type=float, help="at most this many messages per second")
    p.add_argument("--limit", type=int, help="send at most N lines in all")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from docstream.streaming.admin import ensure_topic
    from docstream.streaming.producer import PostProducer, iter_lines, produce_lines
    from docstream.streaming.url import parse_kafka_url

    url = parse_kafka_url(args.to, single_topic=True, allow_group=False)
    if args.partitions < 1:
        raise ConfigError(f"--partitions must be >= 1, got {args.partitions}")
    if args.rate is not None and args.rate <= 0:
        raise ConfigError(f"--rate must be > 0, got {args.rate}")
    missing = [f for f in args.files if not os.path.isfile(f)]
    if missing:
        raise ConfigError(f"no such file: {', '.join(missing)}")
    topic = url.topics[0]
    created = ensure_topic(url.bootstrap, topic, args.partitions)
    lines = itertools.chain.from_iterable(iter_lines(f) for f in args.files)
    if args.limit is not None:
        lines = itertools.islice(lines, max(args.limit, 0))
    producer = PostProducer(url.bootstrap, topic)
    try:
        stats = produce_lines(producer, lines, rate=args.rate)
    finally:
        producer.close()
    out = {"topic": topic, "created": created, **stats.as_dict()}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{stats.sent:,} message(s) to {url.bootstrap}/{topic} in {stats.seconds:.1f} s"
              f"{' (topic created)' if created else ''}; {stats.unkeyed:,} without an id key"
              f"{f'; {stats.failed:,} FAILED' if stats.failed else ''}")
        for e in stats.errors[:5]:
            print(f"  error: {e}", file=sys.stderr)
    return 1 if stats.failed else 0
