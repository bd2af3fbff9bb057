"""raw_forward: the model's forward pass alone — the ceiling docstream is measured against.

Fixed protocol: tokenise (HF fast tokenizer, truncate at docstream's 128-token window),
sort by length, cut fixed-size batches with dynamic padding, forward under
torch.inference_mode with docstream's dtype (what its Predictor picks here: bf16 autocast,
or the same dynamic int8 quantization) and thread count; sweep batch sizes 16..128 and keep
the best. Tokenisation is inside the timing.

raw_forward_windows: the same protocol over the same model windows docstream classifies
(equal work): docstream's own parse and preprocess stages cut the file into windows
(long documents into all their sentence-aligned chunks) outside the timing; inside it, each
cleaned text is tokenised whole by the fast tokenizer, cut at those window lengths (checked
once to give exactly docstream's ids), and every window is sorted, batched and forwarded.
docs/s counts the input documents, so it compares directly with docstream's rows.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.data import read_docs
from bench.models import docstream_precision, docstream_threads, load

BATCH_SIZES = (16, 32, 64, 128)
# Measured earlier on a 2-core Xeon with AMX (the forward pass alone, all-MiniLM-L6,
# ~62-token texts, length-sorted batches); a yardstick for this row, not a target.
REFERENCE = {"bf16 autocast, sorted, b64": 329.0, "fp32, sorted, b32": 135.0}


def forward_sorted(module, tokenizer, texts: list[str], batch_size: int, max_length: int,
                   precision: str) -> tuple[float, float, list[int], float]:
    """(seconds, tokenise seconds, predicted class per text, mean tokens per text)."""
    import torch

    from docstream.model.tensors import autocast_for, pad_batch

    t0 = time.perf_counter()
    ids = tokenizer(texts, truncation=True, max_length=max_length, padding=False)["input_ids"]
    t_tok = time.perf_counter() - t0
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    preds = [0] * len(texts)
    pad = tokenizer.pad_token_id or 0
    # int8: the module itself is quantized, so autocast_for runs it without autocast
    with torch.inference_mode(), autocast_for("cpu", precision):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            arr, mask = pad_batch([ids[i] for i in idx], pad)
            logits = module(arr, mask).float()
            for i, p in zip(idx, logits.argmax(-1).tolist(), strict=True):
                preds[i] = p
    seconds = time.perf_counter() - t0
    return seconds, t_tok, preds, sum(len(x) for x in ids) / max(len(ids), 1)


def run(args) -> dict:
    from transformers import AutoTokenizer

    from docstream.model.encoder import encoder_dir

    texts = [d["text"] for d in read_docs(args.data)]
    module, manifest = load(args.model)
    threads = docstream_threads()
    precision = docstream_precision(manifest)
    if precision == "int8":  # the same dynamic quantization docstream's Predictor applies
        from docstream.model.predictor import quantize_int8

        module = quantize_int8(module)
    max_length = manifest.preprocess.max_chunk_tokens
    tokenizer = AutoTokenizer.from_pretrained(str(encoder_dir()))
    forward_sorted(module, tokenizer, texts[:64], 32, max_length, precision)  # warm-up
    sweep: dict[str, float] = {}
    tok_s = 0.0
    mean_tokens = 0.0
    for b in BATCH_SIZES:
        seconds, tok_s, _preds, mean_tokens = forward_sorted(
            module, tokenizer, texts, b, max_length, precision)
        sweep[str(b)] = round(len(texts) / seconds, 1)
    best = max(sweep, key=lambda k: sweep[k])
    return {
        "docs_s": sweep[best], "best_batch_size": int(best), "sweep_docs_s": sweep,
        "n_docs": len(texts), "dtype": precision, "threads": threads, "max_length": max_length,
        "tokenize_s": round(tok_s, 3), "mean_tokens_per_doc": round(mean_tokens, 1),
        "reference_docs_s": REFERENCE,
        "note": "long docs are truncated at max_length here; docstream classifies all chunks",
    }


def docstream_windows(data, model_dir) -> tuple[list[str], list[list[list[int]]], int]:
    """(cleaned text per doc, docstream's model windows per doc, docs docstream rejects): the
    file through docstream's own parse and preprocess stages (clean, tokenise, sentence-aligned
    chunking), exactly as `docstream run` cuts them, long documents into all their chunks."""
    from docstream.model.artifact import read_manifest
    from docstream.pipelines.file_source import read_batches
    from docstream.pipelines.stages import ParseBatch, PreprocessBatch

    stage = PreprocessBatch(read_manifest(Path(model_dir)).preprocess)
    stage.setup()
    parse = ParseBatch()
    texts: list[str] = []
    windows: list[list[list[int]]] = []
    rejected = 0
    for raw in read_batches(str(data), 512):
        for parsed in parse.process(raw):
            for batch in stage.process(parsed):
                rejected += len(batch.failures)
                for item in batch.items:
                    texts.append(item.prepared.text)
                    windows.append(item.prepared.chunks)
    return texts, windows, rejected


def cut_windows(ids: list[int], lengths: list[int], prefix: list[int],
                suffix: list[int]) -> list[list[int]]:
    """A text's wordpieces cut into windows of the given lengths, each framed by the
    tokenizer's special tokens (BERT: [CLS] … [SEP]), which the lengths include."""
    out, start, frame = [], 0, len(prefix) + len(suffix)
    for n in lengths:
        out.append([*prefix, *ids[start:start + n - frame], *suffix])
        start += n - frame
    return out


def special_frame(tokenizer) -> tuple[list[int], list[int]]:
    """(prefix, suffix) special tokens the tokenizer puts around one sequence."""
    bare = tokenizer("news", add_special_tokens=False)["input_ids"]
    framed = tokenizer("news")["input_ids"]
    at = next(i for i in range(len(framed)) if framed[i:i + len(bare)] == bare)
    return framed[:at], framed[at + len(bare):]


def forward_windows(module, tokenizer, texts: list[str], lengths: list[list[int]],
                    batch_size: int, precision: str) -> tuple[float, float, list[list[int]]]:
    """The raw way over given windows: tokenise every text whole (fast tokenizer, no
    truncation), cut its wordpieces at docstream's window lengths, sort all windows by
    length, fixed batches with dynamic padding, forward. (seconds, tokenise seconds,
    predicted class per window, grouped per text)."""
    import torch

    from docstream.model.tensors import autocast_for, pad_batch

    t0 = time.perf_counter()
    ids = tokenizer(texts, add_special_tokens=False, truncation=False, padding=False,
                    verbose=False)["input_ids"]
    prefix, suffix = special_frame(tokenizer)
    wins: list[list[int]] = []
    owner: list[int] = []
    for d, (x, lens) in enumerate(zip(ids, lengths, strict=True)):
        for w in cut_windows(x, lens, prefix, suffix):
            wins.append(w)
            owner.append(d)
    t_tok = time.perf_counter() - t0
    order = sorted(range(len(wins)), key=lambda i: len(wins[i]))
    preds = [0] * len(wins)
    pad = tokenizer.pad_token_id or 0
    with torch.inference_mode(), autocast_for("cpu", precision):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            arr, mask = pad_batch([wins[i] for i in idx], pad)
            logits = module(arr, mask).float()
            for i, p in zip(idx, logits.argmax(-1).tolist(), strict=True):
                preds[i] = p
    seconds = time.perf_counter() - t0
    per_text: list[list[int]] = [[] for _ in texts]
    for i, p in enumerate(preds):
        per_text[owner[i]].append(p)
    return seconds, t_tok, per_text


PREDICTOR_BUDGETS = (1024, 2048, 4096)


def predictor_rates(model_dir, windows: list[list[list[int]]], n_docs: int,
                    budgets: tuple[int, ...] = PREDICTOR_BUDGETS) -> dict:
    """A diagnosis beside the row, not its figure: docstream's own model path (the handler's
    Predictor: token-budget batches sorted within what one call gets) over the same windows,
    fed as the batch job feeds it (one call per file element of `lines_per_element` docs),
    at its default token budget and at `budgets` (a quick run: the default only). Forward
    only: no tokenisation."""
    from docstream.pipelines.handler import DocstreamModelHandler
    from docstream.pipelines.options import RunSettings

    predictor = DocstreamModelHandler(str(model_dir)).load_model().classifier.predictor
    per = RunSettings.model_fields["lines_per_element"].default
    groups = [[w for ws in windows[i:i + per] for w in ws] for i in range(0, len(windows), per)]
    default = predictor.max_tokens
    predictor.logits(groups[0][:64])  # warm-up
    rates: dict[str, float] = {}
    for budget in sorted({default, *budgets}):
        predictor.max_tokens = budget
        t0 = time.perf_counter()
        for g in groups:
            predictor.logits(g)
        rates[str(budget)] = round(n_docs / (time.perf_counter() - t0), 1)
    predictor.max_tokens = default
    return {"predictor_docs_s": rates[str(default)], "predictor_token_budget": default,
            "predictor_budget_docs_s": rates, "predictor_dtype": predictor.precision,
            "predictor_call_docs": per}


def run_windows(args) -> dict:
    """raw_forward_windows: raw_forward's protocol over the windows docstream classifies."""
    from transformers import AutoTokenizer

    from docstream.model.encoder import encoder_dir

    n_docs = len(read_docs(args.data))
    texts, windows, rejected = docstream_windows(args.data, args.model)
    module, manifest = load(args.model)
    threads = docstream_threads()
    precision = docstream_precision(manifest)
    if precision == "int8":
        from docstream.model.predictor import quantize_int8

        module = quantize_int8(module)
    tokenizer = AutoTokenizer.from_pretrained(str(encoder_dir()))
    lengths = [[len(w) for w in ws] for ws in windows]
    # The raw tokenisation must give exactly docstream's windows, or this is not equal work.
    ids = tokenizer(texts, add_special_tokens=False, truncation=False,
                    verbose=False)["input_ids"]
    prefix, suffix = special_frame(tokenizer)
    differ = sum(cut_windows(x, lens, prefix, suffix) != ws
                 for x, lens, ws in zip(ids, lengths, windows, strict=True))
    if differ:
        raise RuntimeError(f"{differ} of {len(texts)} texts tokenise to other windows than "
                           "docstream's: the two rows would not do the same work")
    forward_windows(module, tokenizer, texts[:64], lengths[:64], 32, precision)  # warm-up
    sweep: dict[str, float] = {}
    forward_only: dict[str, float] = {}
    tok_s = 0.0
    for b in BATCH_SIZES:
        seconds, tok_s, _preds = forward_windows(module, tokenizer, texts, lengths, b,
                                                 precision)
        sweep[str(b)] = round(n_docs / seconds, 1)
        forward_only[str(b)] = round(n_docs / (seconds - tok_s), 1)
    best = max(sweep, key=lambda k: sweep[k])
    del module
    predictor = predictor_rates(args.model, windows, n_docs,
                                budgets=() if args.quick else PREDICTOR_BUDGETS)
    n_windows = sum(len(ws) for ws in windows)
    n_tokens = sum(sum(lens) for lens in lengths)
    return {
        "docs_s": sweep[best], "best_batch_size": int(best), "sweep_docs_s": sweep,
        "n_docs": n_docs, "docs_rejected_by_docstream": rejected, "windows": n_windows,
        "windows_per_doc": round(n_windows / n_docs, 3),
        "windows_s": round(sweep[best] * n_windows / n_docs, 1),
        "mean_tokens_per_doc": round(n_tokens / n_docs, 1),
        "dtype": precision, "threads": threads, "max_length": manifest.preprocess.max_chunk_tokens,
        "tokenize_s": round(tok_s, 3), "forward_only_docs_s": forward_only[best],
        **predictor,
        "note": "docs/s over every input doc; the windows are docstream's (Preprocessor, cut "
                "outside the timing), tokenised and cut again inside it",
    }
