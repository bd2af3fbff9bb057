"""stages: the per-stage cost of docstream's batch path, in one process, without Beam.

Runs the pipeline's own pieces in order over the benchmark file — read, ParseBatch (its input
checks, the nesting pre-scan and the strict JSON hooks, are also timed apart), the
Preprocessor's parts (clean, tokenisation, sentence starts of the texts longer than one
window, chunking), the RunInference
handler (split into Predictor forward and the classifier's post-processing), ToOutcome and
the StoreWriter into a fresh SQLite file (its redaction step, privacy/, is also timed apart:
"pii") — and times each. The sum is what a perfect runner
would cost; the gap to docstream_batch_sqlite is Beam's own overhead.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from pathlib import Path

from bench.data import read_docs


def _group_by_tokens(batches: list, max_tokens: int) -> list[list]:
    """What BatchElements does with the handler's element_size_fn: fill up to max_tokens."""
    groups: list[list] = []
    current: list = []
    size = 0
    for b in batches:
        n = max(b.n_model_tokens, 1)
        if current and size + n > max_tokens:
            groups.append(current)
            current, size = [], 0
        current.append(b)
        size += n
    if current:
        groups.append(current)
    return groups


def _parse_checks_s(payloads: list[bytes]) -> float:
    """Seconds the parse step's input checks alone take over `payloads`: the nesting pre-scan,
    plus what the strict decoder (number, constant and duplicate-key hooks) costs over plain
    json.loads. Both run inside the timed "parse" stage too; this splits them out."""
    import json

    from docstream.pipelines.json_guard import JsonRefused, loads, nesting_too_deep

    def accepted(text: str) -> bool:
        try:
            loads(text)
        except (ValueError, JsonRefused):
            return False
        return True

    texts = [t for t in (p.decode("utf-8", "replace") for p in payloads) if accepted(t)]
    t0 = time.perf_counter()
    for text in texts:
        nesting_too_deep(text)
    t1 = time.perf_counter()
    for text in texts:
        json.loads(text)
    t2 = time.perf_counter()
    for text in texts:
        loads(text)
    t3 = time.perf_counter()
    return (t1 - t0) + max(0.0, (t3 - t2) - (t2 - t1))


def _pii_s(outcomes: list, run_id: str) -> tuple[float, str]:
    """Seconds the store's redaction step alone takes over the outcomes (it also runs inside
    the timed "write" stage), and the policy it applied (privacy.redact.default_redactor: the
    default policy unless $DOCSTREAM_PII_POLICY names another)."""
    from docstream.privacy.redact import default_redactor
    from docstream.schemas.envelope import WriteBatch

    redactor = default_redactor()  # built and warmed here, outside the timing
    batches = [WriteBatch(run_id=run_id, results=o.results, failures=o.failures)
               for o in outcomes]
    t0 = time.perf_counter()
    for batch in batches:
        redactor.redact(batch)
    return time.perf_counter() - t0, redactor.name


def run(args) -> dict:
    from docstream.model.artifact import read_manifest
    from docstream.pipelines.file_source import read_batches
    from docstream.pipelines.handler import DocstreamModelHandler
    from docstream.pipelines.options import RunSettings
    from docstream.pipelines.stages import ParseBatch, PreprocessBatch, ToOutcome
    from docstream.preprocess.preprocessor import Prepared, RawText
    from docstream.preprocess.sentences import sentence_starts
    from docstream.schemas.envelope import WriteBatch
    from docstream.store.engine import make_engine
    from docstream.store.migrate import upgrade
    from docstream.store.writer import StoreWriter

    n_docs = len(read_docs(args.data))
    manifest = read_manifest(Path(args.model))
    lines_per_element = RunSettings.model_fields["lines_per_element"].default
    handler = DocstreamModelHandler(str(args.model))
    loaded = handler.load_model()
    predictor = loaded.classifier.predictor
    sort_buffer = handler.batch_elements_kwargs()["max_batch_size"]
    pre_stage = PreprocessBatch(manifest.preprocess)
    pre_stage.setup()
    pre = pre_stage._pre
    db = Path(args.work) / f"bench-stages-{uuid.uuid4().hex[:8]}.db"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    writer = StoreWriter(engine)
    run_id = f"bench-stages-{uuid.uuid4().hex[:8]}"

    # Warm-up on a few docs so one-time costs (first spaCy call, oneDNN kernels) stay out.
    warm = next(read_batches(str(args.data), 16))
    for b in ParseBatch().process(warm):
        for d in pre_stage.process(b):
            handler.run_inference([d], loaded)

    t: dict[str, float] = defaultdict(float)
    forward_s = 0.0
    real_logits = predictor.logits

    def timed_logits(seqs):
        nonlocal forward_s
        t0 = time.perf_counter()
        out = real_logits(seqs)
        forward_s += time.perf_counter() - t0
        return out

    predictor.logits = timed_logits
    chunks = tokens = 0
    wall0 = time.perf_counter()
    t0 = time.perf_counter()
    raw_batches = list(read_batches(str(args.data), lines_per_element))
    t["read"] += time.perf_counter() - t0
    parse = ParseBatch()
    doc_batches = []
    for raw in raw_batches:
        t0 = time.perf_counter()
        parsed = next(iter(parse.process(raw)))
        t1 = time.perf_counter()
        t["parse"] += t1 - t0
        texts = [RawText(i.post.text, i.post.title, i.post.kind == "social") for i in parsed.items]
        cleaned = [pre.clean(x) for x in texts]
        t2 = time.perf_counter()
        t["clean"] += t2 - t1
        encodings = pre.chunker.encode_batch(cleaned)
        t3 = time.perf_counter()
        t["tokenize"] += t3 - t2
        # Sentence starts only for texts longer than one window, as the Preprocessor does.
        long = [k for k, enc in enumerate(encodings) if not pre.chunker.fits(enc)]
        if manifest.preprocess.sentences == "spacy":
            docs = pre.nlp.pipe((cleaned[k] for k in long), batch_size=pre.spacy_batch_size)
            found = {k: [s.start_char for s in d.sents] for k, d in zip(long, docs, strict=True)}
        else:
            found = {k: sentence_starts(cleaned[k], encodings[k]) for k in long}
        t4 = time.perf_counter()
        t["sentences"] += t4 - t3
        for k, enc in enumerate(encodings):
            pre.chunker.chunk(enc, found.get(k, [0]))
        t5 = time.perf_counter()
        t["chunk"] += t5 - t4
        # The stage itself (prepare = the parts above again, plus record building): the DocBatch
        # the model needs. Its time is reported apart, not added to the total.
        doc_batches.append(next(iter(pre_stage.process(parsed))))
        t["preprocess_stage_check"] += time.perf_counter() - t5
    for db_ in doc_batches:
        for item in db_.items:
            if isinstance(item.prepared, Prepared):
                chunks += len(item.prepared.chunks)
                tokens += item.n_model_tokens
    outcomes = []
    for group in _group_by_tokens(doc_batches, sort_buffer):
        t0 = time.perf_counter()
        preds = handler.run_inference(group, loaded)
        t["model"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        for bp in preds:
            outcomes.extend(ToOutcome().process(bp))
        t["to_outcome"] += time.perf_counter() - t0
    for outcome in outcomes:
        t0 = time.perf_counter()
        writer.write(WriteBatch(run_id=run_id, results=outcome.results, failures=outcome.failures))
        t["write"] += time.perf_counter() - t0
    wall = time.perf_counter() - wall0 - t["preprocess_stage_check"]
    checks_s = _parse_checks_s([r.payload for b in raw_batches for r in b.inputs])
    pii_s, pii_policy = _pii_s(outcomes, run_id)
    engine.dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)

    order = ["read", "parse", "clean", "tokenize", "sentences", "chunk", "model",
             "to_outcome", "write"]
    stages = {}
    for name in order:
        s = t[name]
        stages[name] = {"seconds": round(s, 4), "us_per_doc": round(1e6 * s / n_docs, 1),
                        "docs_s": round(n_docs / s, 1) if s > 0 else None,
                        "share": round(s / wall, 3) if wall > 0 else None}
    stages["parse"]["checks_us_per_doc"] = round(1e6 * checks_s / n_docs, 2)
    stages["write"]["pii_us_per_doc"] = round(1e6 * pii_s / n_docs, 2)
    stages["write"]["pii_policy"] = pii_policy
    stages["model"]["forward_s"] = round(forward_s, 4)
    stages["model"]["post_s"] = round(t["model"] - forward_s, 4)
    return {
        "docs_s": round(n_docs / wall, 1), "n_docs": n_docs, "seconds": round(wall, 3),
        "stages": stages, "chunks": chunks, "chunks_per_doc": round(chunks / n_docs, 3),
        "model_tokens_per_doc": round(tokens / n_docs, 1),
        "dtype": predictor.precision, "token_budget": predictor.max_tokens,
        "sort_buffer_tokens": sort_buffer, "lines_per_element": lines_per_element,
        "preprocess_stage_s": round(t["preprocess_stage_check"], 4),
        "note": "docs_s here = the sum of the stages, run serially in one process without Beam",
    }
