"""hf_pipeline_b1 / _b32: what a user writes first — transformers' text-classification
pipeline over AutoModelForSequenceClassification (4 labels) from the encoder's package
folder, on CPU, fp32, default settings, truncation at 128 tokens."""

from __future__ import annotations

import time

from bench.data import read_docs


def _run(args, batch_size: int) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from docstream.model.encoder import encoder_dir

    texts = [d["text"] for d in read_docs(args.data)]
    folder = str(encoder_dir())
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=4)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    pipe = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
    kwargs = {"batch_size": batch_size, "truncation": True, "max_length": 128}
    pipe(texts[:8], **kwargs)  # warm-up
    t0 = time.perf_counter()
    out = pipe(texts, **kwargs)
    seconds = time.perf_counter() - t0
    if len(out) != len(texts):
        raise RuntimeError(f"pipeline returned {len(out)} results for {len(texts)} texts")
    return {"docs_s": round(len(texts) / seconds, 1), "seconds": round(seconds, 3),
            "n_docs": len(texts), "batch_size": batch_size, "dtype": "fp32",
            "threads": torch.get_num_threads()}


def run_b1(args) -> dict:
    return _run(args, 1)


def run_b32(args) -> dict:
    return _run(args, 32)
