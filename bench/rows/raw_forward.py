"""raw_forward: the model's forward pass alone — the ceiling docstream is measured against.

Fixed protocol: tokenise (HF fast tokenizer, truncate at docstream's 128-token window),
sort by length, cut fixed-size batches with dynamic padding, forward under
torch.inference_mode with docstream's dtype (what its Predictor picks here: bf16 autocast,
or the same dynamic int8 quantization) and thread count; sweep batch sizes 16..128 and keep
the best. Tokenisation is inside the timing.
"""

from __future__ import annotations

import time

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
