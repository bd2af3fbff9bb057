"""beam_stock: Beam RunInference with Beam's own PytorchModelHandlerKeyedTensor.

What the Beam documentation leads a user to write: a beam.Map that tokenises each post into
a dict of fixed-length tensors (padding to 128 so Beam's handler can torch.stack them), the
stock handler with default batching, fp32, the DirectRunner with the same options docstream
uses (one worker, in memory). Timed: the whole pipeline, model loading included — the same
span `docstream run` reports.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from transformers import AutoConfig, AutoModel

from bench.data import read_docs
from docstream.model.classifier import TextClassifier

MAX_LENGTH = 128
_TOKENIZER = None
_SEEN: list[int] = []


class StockClassifier(TextClassifier):
    """The same network, constructible from (config folder, labels) as Beam's handler needs."""

    def __init__(self, config_dir: str, n_labels: int) -> None:
        super().__init__(AutoModel.from_config(AutoConfig.from_pretrained(config_dir)), n_labels)


def tokenize(text: str) -> dict:
    global _TOKENIZER
    if _TOKENIZER is None:
        from transformers import AutoTokenizer

        from docstream.model.encoder import encoder_dir

        _TOKENIZER = AutoTokenizer.from_pretrained(str(encoder_dir()))
    enc = _TOKENIZER(text, truncation=True, max_length=MAX_LENGTH, padding="max_length",
                     return_tensors="pt")
    return {"input_ids": enc["input_ids"][0], "attention_mask": enc["attention_mask"][0]}


def _record(n: int) -> None:
    _SEEN.append(n)


def run(args) -> dict:
    import apache_beam as beam
    import torch
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.ml.inference.pytorch_inference import PytorchModelHandlerKeyedTensor
    from apache_beam.options.pipeline_options import PipelineOptions

    from bench.models import load
    from docstream.model.encoder import encoder_dir

    texts = [d["text"] for d in read_docs(args.data)]
    module, manifest = load(args.model)
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        state_path = Path(tmp) / "state_dict.pt"
        torch.save(module.state_dict(), state_path)
        del module
        handler = PytorchModelHandlerKeyedTensor(
            state_dict_path=str(state_path), model_class=StockClassifier,
            model_params={"config_dir": str(encoder_dir()), "n_labels": len(manifest.labels)},
            device="CPU",
        )
        options = PipelineOptions(["--runner=DirectRunner", "--direct_num_workers=1",
                                   "--direct_running_mode=in_memory"])
        _SEEN.clear()
        t0 = time.perf_counter()
        with beam.Pipeline(options=options) as p:
            _ = (
                p
                | "Create" >> beam.Create(texts)
                | "Tokenize" >> beam.Map(tokenize)
                | "RunInference" >> RunInference(handler)
                | "Argmax" >> beam.Map(lambda r: int(r.inference.argmax()))
                | "Count" >> beam.combiners.Count.Globally()
                | "Record" >> beam.Map(_record)
            )
        seconds = time.perf_counter() - t0
    if sum(_SEEN) != len(texts):
        raise RuntimeError(f"beam_stock classified {sum(_SEEN)} of {len(texts)} texts")
    return {"docs_s": round(len(texts) / seconds, 1), "seconds": round(seconds, 3),
            "n_docs": len(texts), "dtype": "fp32", "threads": torch.get_num_threads(),
            "padding": f"max_length {MAX_LENGTH}", "batching": "Beam default BatchElements"}
