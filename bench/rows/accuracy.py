"""accuracy: every numeric mode tried, on the AG News test posts, through docstream's path.

The posts (not the synthetic long docs) go through the Preprocessor once; each mode then
classifies the same chunks with DocClassifier (token-budget batches, aggregation,
temperature). Modes: fp32, bf16 autocast, dynamic int8 (torch.ao quantize_dynamic on the
Linear layers), and ONNX Runtime fp32 / dynamic int8 when onnxruntime and onnx are installed.
The rule checked: a faster mode becomes the default only if it is within 0.5 points of fp32.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.data import is_long, read_docs

MAX_DELTA_POINTS = 0.5


class OrtModule:
    """An ONNX Runtime session behind the `module(ids, mask) -> logits` call Predictor makes
    (build_classifier takes it in place of the torch module)."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])

    def to(self, _device):
        return self

    def eval(self):
        return self

    def __call__(self, ids, mask):
        import torch

        out = self.session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        return torch.from_numpy(out[0])


def export_onnx(module, path: Path) -> None:
    import torch

    ids = torch.ones((2, 16), dtype=torch.long)
    torch.onnx.export(
        module, (ids, torch.ones_like(ids)), str(path), input_names=["input_ids", "attention_mask"],
        output_names=["logits"], opset_version=17, dynamo=False,
        dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                      "logits": {0: "batch"}},
    )


def build_modes(module, work: Path, threads: int) -> tuple[dict, dict]:
    """{mode: (module, Predictor precision)} and {mode: why it was skipped}."""

    modes = {"fp32": (module, "fp32"), "bf16_autocast": (module, "bf16")}
    skipped: dict[str, str] = {}
    try:
        from docstream.model.predictor import quantize_int8  # docstream's own int8 path

        modes["int8_dynamic"] = (quantize_int8(module), "fp32")
    except Exception as e:  # report, don't fail the row
        skipped["int8_dynamic"] = f"{e.__class__.__name__}: {e}"
    try:
        import onnxruntime  # noqa: F401
        from onnxruntime.quantization import QuantType
        from onnxruntime.quantization import quantize_dynamic as ort_quantize

        fp32_path = work / "bench-model.onnx"
        export_onnx(module, fp32_path)
        modes["onnx_fp32"] = (OrtModule(fp32_path, threads), "fp32")
        int8_path = work / "bench-model.int8.onnx"
        ort_quantize(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8)
        modes["onnx_int8"] = (OrtModule(int8_path, threads), "fp32")
    except ImportError as e:
        skipped["onnx"] = f"not installed ({e.name}); pip install 'docstream[bench]'"
    except Exception as e:
        skipped["onnx"] = f"{e.__class__.__name__}: {e}"
    return modes, skipped


def run(args) -> dict:
    import numpy as np
    import torch

    from bench.models import docstream_precision, docstream_threads, load
    from docstream.model.build import build_classifier
    from docstream.model.tokenizer import load_tokenizer
    from docstream.preprocess.preprocessor import Prepared, Preprocessor, RawText

    posts = [d for d in read_docs(args.data) if not is_long(d)]
    module, manifest = load(args.model)
    threads = docstream_threads()
    label_index = {lab: i for i, lab in enumerate(manifest.labels)}
    pre = Preprocessor(manifest.preprocess, load_tokenizer())
    prepared = pre.prepare([RawText(p["text"]) for p in posts])
    keep = [i for i, x in enumerate(prepared) if isinstance(x, Prepared)]
    docs = [prepared[i].chunks for i in keep]
    gold = np.array([label_index[posts[i]["label"]] for i in keep])
    modes, skipped = build_modes(module, Path(args.work), threads)
    results: dict[str, dict] = {}
    fp32_pred = None
    for name, (mod, precision) in modes.items():
        classifier = build_classifier(manifest, mod, device="cpu", precision=precision)
        classifier.probabilities(docs[:32])  # warm-up
        t0 = time.perf_counter()
        probs = classifier.probabilities(docs)
        seconds = time.perf_counter() - t0
        pred = probs.argmax(axis=1)
        if fp32_pred is None:
            fp32_pred = pred
        results[name] = {
            "accuracy": round(100 * float((pred == gold).mean()), 2),
            "agreement_with_fp32": round(100 * float((pred == fp32_pred).mean()), 2),
            "model_docs_s": round(len(docs) / seconds, 1),
        }
        del classifier
    base = results["fp32"]
    for r in results.values():
        r["delta_points"] = round(r["accuracy"] - base["accuracy"], 2)
        r["speedup_vs_fp32"] = round(r["model_docs_s"] / base["model_docs_s"], 2)
        r["within_0_5_points"] = abs(r["delta_points"]) <= MAX_DELTA_POINTS
    eligible = [n for n, r in results.items()
                if n != "fp32" and r["within_0_5_points"] and r["speedup_vs_fp32"] > 1.0]
    picked = docstream_precision(manifest)
    default_mode = {"bf16": "bf16_autocast", "fp32": "fp32", "int8": "int8_dynamic"}.get(picked,
                                                                                        picked)
    return {
        "docs_s": None, "n_posts": len(docs), "model_kind": args.model_kind,
        "threads": threads, "torch": torch.__version__, "modes": results, "skipped": skipped,
        "eligible_as_default": eligible,
        "docstream_default_mode": default_mode,
        "docstream_default_ok": results.get(default_mode, {}).get("within_0_5_points"),
        "meaningful": args.model_kind == "bundled",
        "note": ("accuracy of a random-head model is chance level; only agreement and speed "
                 "mean something" if args.model_kind != "bundled" else
                 f"AG News test posts: {len(docs)} of 7,600"),
        "onnx_threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or threads,
    }
