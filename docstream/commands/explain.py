"""`docstream explain`: which words made the model decide (Integrated Gradients).

`--text T` explains a text given here; `--id ID` explains a stored result's text. The store
keeps only the redacted text (and only with `run --store-text`), so `--id` explains what the
store holds, which can differ from what the model read during the run: both labels are
printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from docstream.errors import ConfigError

#: words listed under the coloured text, each way
TOP_WORDS = 5


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain", help="show which words made the model decide (token attributions)",
        description="Integrated Gradients over the model's word embeddings, on an fp32 copy of "
        "the artifact's weights, summed into words. Green words push towards the label, red "
        "ones against; long texts are shown per model window with the weight the chunk "
        "aggregator gave it.")
    p.add_argument("--model", metavar="PATH|NAME@VERSION|NAME@production",
                   help="model artifact directory or registry reference (looked up in --db); "
                   "default: the bundled news-topic model")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", help="the text to explain")
    what.add_argument("--id", dest="doc_id", metavar="ID",
                      help="explain the stored (redacted) text of this result")
    p.add_argument("--title", help="with --text: the post's title (classified with the text)")
    p.add_argument("--social", action="store_true", help="with --text: clean it as a social "
                   "post (mentions, hashtags, URLs), as `run` does for kind=social")
    p.add_argument("--source", metavar="S", help="with --id: the result's source (needed when "
                   "the id is stored under several sources)")
    p.add_argument("--db", metavar="URL", help="the store: --id reads it through a read-only "
                   "connection (default $DOCSTREAM_READER_DB, else $DOCSTREAM_DB, else "
                   "sqlite:///docstream.db); a registry reference is looked up there as `run` "
                   "does (default $DOCSTREAM_DB)")
    p.add_argument("--target", metavar="LABEL", help="explain this label (default: the "
                   "predicted one)")
    p.add_argument("--n-steps", type=int, default=None, metavar="N",
                   help="Integrated Gradients steps per window (default 50)")
    p.add_argument("--device", help="torch device (default: cuda if present)")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    p.set_defaults(func=run)


def model_dir(spec: str | None, db: str | None) -> str:
    """The artifact directory of --model; a registry reference is looked up in the store."""
    from docstream.model.bundled import bundled_model_dir

    if spec is None:
        return str(bundled_model_dir())
    if spec == "noop":
        raise ConfigError("--model noop has no weights to explain; give a model artifact")
    if "@" not in spec or os.path.exists(spec):  # a directory: no store, no Beam import
        return spec
    from docstream.pipelines.model_source import resolve_model
    from docstream.store.engine import default_url

    return resolve_model(spec, db or default_url())


def stored_result(db: str | None, doc_id: str, source: str | None) -> dict[str, Any]:
    """The stored result `doc_id` (of `source`), read through a read-only connection."""
    from sqlalchemy import select

    from docstream.commands.query import reader_url
    from docstream.store.engine import check_reachable, make_readonly_engine
    from docstream.store.tables import ClassificationRow as C

    engine = make_readonly_engine(reader_url(db))
    try:
        check_reachable(engine)
        stmt = select(C.source, C.id, C.label, C.score, C.model_name, C.model_version, C.kind,
                      C.title, C.text).where(C.id == doc_id)
        if source is not None:
            stmt = stmt.where(C.source == source)
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt.limit(20))]
    finally:
        engine.dispose()
    where = f"id {doc_id!r}" + (f" of source {source!r}" if source else "")
    if not rows:
        raise ConfigError(f"no stored result with {where}")
    if len(rows) > 1:
        raise ConfigError(f"{where} is stored under several sources "
                          f"({', '.join(sorted(r['source'] for r in rows))}); pass --source")
    row = rows[0]
    if not row["text"]:
        raise ConfigError(f"result {row['source']}/{doc_id} has no stored text; the job keeps "
                          "texts only of flagged posts: run it with --store-text all")
    return row


def run(args: argparse.Namespace) -> int:
    from docstream.commands.train import quiet_transformers
    from docstream.model.explain import DEFAULT_N_STEPS, Explainer

    if args.n_steps is not None and args.n_steps < 2:
        raise ConfigError("--n-steps must be >= 2")
    if args.doc_id is not None and (args.title or args.social):
        raise ConfigError("--title and --social go with --text; --id uses the stored ones")
    stored = stored_result(args.db, args.doc_id, args.source) if args.doc_id else None
    quiet_transformers()
    explainer = Explainer(model_dir(args.model, args.db), device=args.device,
                          n_steps=args.n_steps or DEFAULT_N_STEPS)
    if stored is None:
        text, title, social = args.text, args.title, args.social
    else:
        text, title, social = stored["text"], stored["title"], stored["kind"] == "social"
    explanation = explainer.explain(text, args.target, title=title, social=social)
    if args.json:
        doc = explanation.model_dump(mode="json")
        if stored is not None:
            doc = {"explained": "the stored, redacted text (its prediction can differ from "
                   "the stored result)",
                   "stored": {k: stored[k] for k in ("source", "id", "label", "score",
                                                     "model_name", "model_version")},
                   "explanation": doc}
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return 0
    show(explanation, text, title, stored)
    return 0


def _style(score: float) -> str:
    """A word's style: green towards the label, red against; three strengths by |score|
    (named colours, which every colour terminal shows)."""
    level = abs(score)
    colour = "green" if score > 0 else "red"
    if level >= 0.5:
        return f"black on {colour}"
    if level >= 0.2:
        return f"bold {colour}"
    return colour if level >= 0.05 else ""


def _coloured(text: str, words: list[Any], start: int = 0, end: int | None = None) -> Any:
    from rich.text import Text

    end = len(text) if end is None else end
    out = Text(text[start:end])
    for w in words:
        if w.start >= start and w.end <= end and _style(w.score):
            out.stylize(_style(w.score), w.start - start, w.end - start)
    return out


def show(e: Any, text: str, title: str | None, stored: dict[str, Any] | None) -> None:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    if stored is not None:
        console.print(f"result {stored['source']}/{stored['id']}: stored label "
                      f"{stored['label']} ({stored['score']:.3f}, {stored['model_name']}@"
                      f"{stored['model_version']})")
        console.print("explaining the stored, redacted text: its prediction can differ from "
                      "the stored result")
    console.print(f"prediction: {e.label} ({e.probs[e.label]:.3f}) by {e.model}; explaining "
                  f"{e.target} ({e.target_prob:.3f})")
    s = e.settings
    console.print(f"integrated gradients: {s.n_steps} steps, baseline {s.baseline!r}, on the "
                  f"calibrated probability; convergence delta {e.delta:.4f}")
    title_words = [w for w in e.words if w.field == "title"]
    if title and title_words:
        console.print("title: ", end="")
        console.print(_coloured(title, title_words))
    if len(e.windows) == 1:
        console.print(_coloured(text, [w for w in e.words if w.field == "text"]))
    else:
        for win in e.windows:
            console.print(f"\nwindow {win.index + 1}/{len(e.windows)}: weight {win.weight:.3f}, "
                          f"p({e.target}) = {win.prob:.3f}", style="bold")
            console.print(_coloured(text, [w for w in win.words if w.field == "text"],
                                    win.start, win.end))
    ranked = sorted(e.words, key=lambda w: w.raw)
    pos = [w for w in reversed(ranked) if w.raw > 0][:TOP_WORDS]
    neg = [w for w in ranked if w.raw < 0][:TOP_WORDS]
    console.print()
    console.print(f"for {e.target}: " + ", ".join(f"{w.text} ({w.score:+.2f})" for w in pos))
    console.print("against: " + ", ".join(f"{w.text} ({w.score:+.2f})" for w in neg))
    sys.stdout.flush()
