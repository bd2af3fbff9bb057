"""`docstream run`: the main job."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from docstream.errors import ConfigError
from docstream.model.bundled import bundled_model_dir
from docstream.store.audit_chain import audit_key_from_env
from docstream.store.engine import default_url

from .audit import write_head_file


def default_sample() -> str:
    from importlib import resources

    return str(resources.files("docstream") / "samples" / "posts.jsonl")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="classify posts from files or Kafka into the store",
        description="Classify posts. With no arguments: the bundled sample posts, the bundled "
        "model and sqlite:///docstream.db on Beam's local runner. Arguments after `--` go to Beam.",
    )
    p.add_argument("--source", action="append", metavar="PATH|GLOB|kafka://HOST:PORT/TOPIC",
                   help="input files (JSON Lines), globs or directories; repeatable. "
                   "Default: the bundled sample posts")
    p.add_argument("--sink", metavar="URL", help="database URL; default $DOCSTREAM_DB or "
                   "sqlite:///docstream.db")
    p.add_argument("--model", metavar="PATH|NAME@VERSION|NAME@production|noop",
                   help="model artifact directory, or a registry reference; default: the "
                   "bundled news-topic model")
    p.add_argument("--entities", action="store_true", help="extract named entities (spaCy NER); "
                   "names and places are then redacted too (see --pii-policy)")
    p.add_argument("--pii-policy", default="default", metavar="FILE|NAME|off",
                   help="how personal data is redacted before anything is stored: a policy "
                   "JSON file, a packaged policy (default, strict), or off (nothing redacted; "
                   "audit records say off). Hashing policies need $DOCSTREAM_PII_KEY. "
                   "Default: default (pattern types replaced by <TYPE>)")
    p.add_argument("--runner", default=None, help="Beam runner (default DirectRunner for files)")
    p.add_argument("--run-id", help="name this run (default: random); re-using a run id makes a "
                   "replay that adds no audit records")
    p.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default: cuda if present)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16", "int8"], default="auto",
                   help="numeric mode (auto: the fastest one the artifact checked for this device)")
    p.add_argument("--review-threshold", type=float, help="needs_review below this calibrated "
                   "score (default: the model's)")
    p.add_argument("--store-text", choices=["review", "all", "off"], default="review",
                   help="which posts keep their (redacted) text in the store for review: "
                   "flagged ones (review, the default), all, none (off)")
    p.add_argument("--explain", choices=["review", "all", "off"], default="review",
                   help="token attributions (Integrated Gradients) in a branch after inference: "
                   "for the results flagged for review (default), all (needs --store-text all), "
                   "or none; off the main path, with a bounded backlog")
    p.add_argument("--explain-steps", type=int, default=0, metavar="N",
                   help="Integrated Gradients steps per explanation (default: the model's)")
    p.add_argument("--store-wait-secs", type=float, metavar="S", help="wait out a database "
                   "outage for S seconds before stopping (batch default 60; streaming default: "
                   "as long as it lasts)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--audit-head-out", metavar="FILE", help="write the heads of the run's audit "
                   "chains (chain, head hash, length) to FILE as JSON at its end: keep it "
                   "outside the database for `docstream audit verify --head FILE`")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    k = p.add_argument_group("streaming (kafka:// sources)")
    k.add_argument("--flush-secs", type=float, default=1.0, help="longest wait before a "
                   "result is written at low traffic (default 1.0)")
    k.add_argument("--max-records", type=int, default=500, help="records per poll (default 500)")
    k.add_argument("--poll-tokens", type=int, metavar="N",
                   help="estimated model tokens per poll at most (a record's value bytes / 6): "
                   "a backlog of long documents is read and written in units of about this "
                   "much model work, short posts still up to --max-records a poll. Default: "
                   "8 model batches (32768 on CPU, 524288 on CUDA); 0: only --max-records")
    k.add_argument("--max-in-flight", type=int, default=5000, help="records read but not yet "
                   "written at most; bounds memory with a backlog (default 5000)")
    k.add_argument("--max-seconds", type=float, help="stop (drain) after this many seconds")
    k.add_argument("--watch-model-secs", type=float, default=10.0, metavar="S",
                   help="with --model NAME@production: look for a newly promoted version every "
                   "S seconds and switch to it without a restart (default 10)")
    k.add_argument("--metrics-port", metavar="[HOST:]PORT",
                   help="serve Prometheus metrics on http://HOST:PORT/metrics (HOST default "
                   "0.0.0.0; PORT 0: any free port, printed at the start); give each worker "
                   "on a machine its own port. Default: no metrics")
    k.add_argument("--worker", metavar="NAME", default=os.environ.get("DOCSTREAM_WORKER"),
                   help="this worker's name in its consumer group (env DOCSTREAM_WORKER): "
                   "workers of one group=NAME share the topic's partitions, and each keeps its "
                   "own run id stream-GROUP-NAME, `runs` row and audit chain. Default: HOST-PID")
    k.add_argument("--metrics-worker", metavar="NAME",
                   help="the `worker` label of every metric (default: the worker's name)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from docstream.pipelines.model_source import production_name, resolve_model
    from docstream.pipelines.options import RunSettings
    from docstream.privacy.redact import activate

    sources = args.source or [default_sample()]
    kafka = [s for s in sources if s.startswith("kafka://")]
    if kafka and len(kafka) != len(sources):
        raise ConfigError("--source: mix of kafka:// and files; run them as separate jobs")
    if not kafka:
        # The batch job tokenises between model batches, when the other cores idle: let the
        # tokenizer use them (15% faster end to end with the no-op model, benchmark). The
        # streaming job keeps it off: its runner starts processes, and a fork after parallel
        # tokenisation makes the tokenizers library warn and fall back.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    if not kafka and (args.metrics_port is not None or args.metrics_worker is not None
                      or (args.worker is not None and "DOCSTREAM_WORKER" not in os.environ)):
        raise ConfigError("--metrics-port, --metrics-worker and --worker are for the streaming "
                          "job "
                          "(kafka:// sources); a batch job can push its counts to a "
                          "Pushgateway instead (see the README's Metrics section)")
    sink = args.sink or default_url()
    model_dir = resolve_model(args.model, sink) if args.model else str(bundled_model_dir())
    try:
        settings = RunSettings(
            sources=sources, sink=sink, model_dir=model_dir, entities=args.entities,
            runner=args.runner or ("PrismRunner" if kafka else "DirectRunner"),
            beam_args=args.beam_args, device=args.device, precision=args.precision,
            review_threshold=args.review_threshold, progress=not args.no_progress,
            pii_policy=args.pii_policy, store_text=args.store_text, explain=args.explain,
            explain_steps=args.explain_steps,
            **({"store_wait_s": args.store_wait_secs}
               if args.store_wait_secs is not None and not kafka else {}),
            **({"run_id": args.run_id} if args.run_id else {}),
        )
    except ValueError as e:
        raise ConfigError(str(e).replace("\n", " ")) from e
    # before anything starts: a bad policy, or one that hashes without a key, is one line
    activate(settings.pii_policy, entities=settings.entities)
    audit_key_from_env()  # a bad audit key setting is one line, before anything starts
    if args.audit_head_out and not Path(args.audit_head_out).resolve().parent.is_dir():
        raise ConfigError(f"--audit-head-out {args.audit_head_out}: no such directory")
    if kafka:
        from docstream.pipelines.metrics import parse_listen
        from docstream.pipelines.stream import run_stream
        from docstream.pipelines.stream_options import StreamOptions

        addr, port = (parse_listen(args.metrics_port) if args.metrics_port is not None
                      else ("0.0.0.0", None))
        summary = run_stream(settings, StreamOptions(
            flush_secs=args.flush_secs, max_records=args.max_records,
            poll_tokens=args.poll_tokens,
            max_in_flight=args.max_in_flight, max_seconds=args.max_seconds,
            watch_model=production_name(args.model) if args.model else None,
            watch_interval_s=args.watch_model_secs, store_wait_s=args.store_wait_secs,
            metrics_port=port, metrics_addr=addr, metrics_worker=args.metrics_worker,
            worker=args.worker))
    else:
        from docstream.pipelines.batch import run_batch

        summary = run_batch(settings)
    if args.audit_head_out:
        write_head_file(args.audit_head_out, summary.run_id, summary.audit_heads)
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2))
    else:
        print_summary(summary.as_dict())
    return 0


def _secs(x: float | None) -> str:
    return "unknown" if x is None else f"{x:.1f} s"


def print_summary(s: dict) -> None:
    out = sys.stdout
    if "first_result_s" in s:  # a stream: loading, first result and throughput apart
        steady = s.get("steady_docs_per_s")
        print(f"run {s['run_id']}: {s['inputs']:,} inputs in {s['seconds']:.1f} s; model "
              f"loaded in {_secs(s.get('model_load_s'))} (ready at "
              f"{_secs(s.get('model_ready_s'))}), first result at "
              f"{_secs(s['first_result_s'])}, then "
              f"{'unknown' if steady is None else f'{steady:,.1f}'} docs/s", file=out)
        if s.get("worker"):
            print(f"  worker {s['worker']} of group {s.get('group', '?')}: owned "
                  f"{', '.join(s.get('owned') or []) or 'no partition'} at the end, "
                  f"{s.get('plans', 0)} plan(s)", file=out)
    else:
        print(f"run {s['run_id']}: {s['inputs']:,} inputs in {s['seconds']:.1f} s, of which "
              f"{s.get('startup_seconds', 0):.1f} s loading the model; "
              f"{s['docs_per_s']:,.1f} docs/s", file=out)
    print(f"  classified: {s['classified']:,}  (needs review: {s['needs_review']:,}, "
          f"{100 * s['needs_review_share']:.1f}%)", file=out)
    for label, n in s["labels"].items():
        print(f"    {label:<20} {n:>8,}", file=out)
    print(f"  dead letters: {s['dead_letters']:,}", file=out)
    for reason, n in s["dead_by_reason"].items():
        print(f"    {reason:<20} {n:>8,}", file=out)
    ex = s.get("explanations") or {}
    if ex.get("submitted"):
        print(f"  explanations: {int(ex['explained']):,} stored, {int(ex['skipped']):,} skipped "
              f"(backlog full), {int(ex['failed']):,} failed; {ex['per_s']:.2f}/s "
              f"(`docstream explain --id` computes any on demand)", file=out)
    for h in s.get("audit_heads", []):
        print(f"  audit chain {h['chain']}: {h['length']:,} records, head {h['head_hash']} "
              f"({'keyed' if h['keyed'] else 'unkeyed'})", file=out)
