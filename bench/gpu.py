"""Model-side benchmark rows on CUDA, for a machine with python3, torch, transformers,
tokenizers and numpy only (no Beam, spaCy, SQLAlchemy or pydantic).

    python3 bench/gpu.py --device cuda [--json PATH]     # the real run, <= 4 minutes
    python3 bench/gpu.py --device cpu --quick             # smoke test on a CPU machine

Rows, all on the same synthetic ~64-token texts (a fixed vocabulary, seeded):
  raw_forward        the forward pass alone: pre-tokenised ids sorted by length, fixed-size
                     batches with dynamic padding, bf16 autocast, inference_mode; batch-size
                     sweep, best kept. (Tokenisation is timed apart and reported.) Also
                     the device-resident ceiling: the best batch size with every batch
                     already on the GPU (no host work at all).
  predictor_*        docstream's own model path: model.classify.DocClassifier (softmax, chunk
                     aggregation) over model.predictor.Predictor (token-budget batching from
                     model.batching), built by model.build.build_classifier as the Beam
                     handler builds it, and called the way the handler calls it:
                       _stock_handler_calls  stock Predictor, one call per handler sort buffer
                                             (32,768 tokens ≈ 500 docs)
                       _stock_large_calls    stock Predictor, 16,384 docs per call
                       _prefetch_large_calls PrefetchPredictor below: pinned staging buffers
                                             reused across batches, H2D copies on a side stream
                                             overlapping compute, one D2H copy per call
                                             (the same DocClassifier over it)
Padding and autocast everywhere are model.tensors' pad_batch and autocast_for.
GPU utilisation is sampled during every row (torch.cuda.utilization() with pynvml, else
nvidia-smi). Targets: raw_forward >= 50,000 docs/s; docstream model path >= 0.85 x raw.

Long module: one script by design, run as `python3 bench/gpu.py` on a GPU machine that has
no docstream install and none of bench/'s other dependencies; its measurement helpers and
the PrefetchPredictor proposal travel with it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.abc
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).resolve().parent / "gpu_assets"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import AutoConfig, AutoModel  # noqa: E402

# Packages the GPU machine does not have: docstream's model modules must not need them.
ABSENT_ON_GPU_BOX = ("apache_beam", "spacy", "sqlalchemy", "psycopg", "kafka", "pydantic")
# What `docstream` offers in a plain checkout: the package root and its import-free errors.
CHECKOUT_DOCSTREAM = ("docstream", "docstream.errors")
# Every model module this script uses; each must import with the packages above blocked.
DOCSTREAM_MODEL_MODULES = ("model.batching", "model.tensors", "model.predictor", "model.classifier",
                           "model.aggregate", "model.classify", "model.build")
LABELS = ("World", "Sports", "Business", "Sci/Tech")
RAW_TARGET_DOCS_S = 50_000.0
MODEL_PATH_TARGET_RATIO = 0.85
HANDLER_SORT_BUFFER_TOKENS = 32_768  # pipelines/handler.py DocstreamModelHandler default
LARGE_CALL_DOCS = 16_384
_WORD_TEXT = (
    "the of and to in a is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when if "
    "more will no so can about said what out up its into them than time only new some could "
    "these two may first then do any like my now over such our man me even most made after "
    "also did many before must through back years where much your way well down should "
    "because each just those people how too little state good very make world still own see "
    "men work long get here between both life being under never day same another know while "
    "last might us great old year off come since against go came right used take three "
    "market company government team game season report police minister bank shares price "
    "oil deal court president week city officials deal growth profit players coach football "
    "league election war talks space software internet computer research microsoft google"
)
WORDS = _WORD_TEXT.split()


class _Blocker(importlib.abc.MetaPathFinder):
    """Makes the packages absent on the GPU machine unimportable (to prove we don't need them)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.attempts: list[str] = []

    def find_spec(self, fullname, path, target=None):
        # The GPU machine has a plain checkout, not the installed package: docstream/ there
        # holds only the import-free root, so docstream.model, docstream.store ... are absent
        # too (an editable install would hide a model module importing them absolutely).
        installed_only = fullname.startswith("docstream.") and fullname not in CHECKOUT_DOCSTREAM
        if fullname.split(".")[0] in self.names or installed_only:
            self.attempts.append(fullname)
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked: absent on the "
                                      "GPU machine)", name=fullname)
        return None


def import_docstream_model() -> dict:
    """Import docstream's model modules with the GPU box's absent packages blocked."""
    already = [m for m in ABSENT_ON_GPU_BOX if m in sys.modules]
    blocker = _Blocker([m for m in ABSENT_ON_GPU_BOX if m not in sys.modules])
    sys.meta_path.insert(0, blocker)
    report: dict = {"blocked": list(blocker.names), "preloaded_by_torch_or_transformers": already}
    try:
        for name in DOCSTREAM_MODEL_MODULES:
            try:
                importlib.import_module(name)
                report.setdefault("imported", []).append(name)
            except ImportError as e:
                report.setdefault("failed", {})[name] = f"{e.__class__.__name__}: {e}"
    finally:
        sys.meta_path.remove(blocker)
    if blocker.attempts:  # even an import that was caught and survived counts as a need
        report["blocked_attempts"] = sorted(set(blocker.attempts))
    report["ok"] = "failed" not in report and not blocker.attempts
    return report


# ---------------------------------------------------------------- data and model


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    """Seeded texts of 44..80 words from a fixed vocabulary (~64 wordpieces with specials)."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        k = rng.randint(44, 80)
        words = [rng.choice(WORDS) for _ in range(k)]
        for j in range(11, k, 12):
            words[j] += "."
        texts.append(" ".join(words).capitalize())
    return texts


def load_tokenizer(max_length: int = 128) -> Tokenizer:
    tok = Tokenizer.from_file(str(ASSETS / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length)
    return tok


def build_model(device: torch.device, n_labels: int = 4):
    from model.classifier import TextClassifier

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(str(ASSETS))
    encoder = AutoModel.from_config(config)
    return TextClassifier(encoder, n_labels).to(device).eval()


# ---------------------------------------------------------------- measurement helpers


class UtilSampler:
    """Mean/max GPU utilisation while a block runs (pynvml via torch, else nvidia-smi)."""

    def __init__(self, device: torch.device, interval_s: float = 0.1) -> None:
        self.device = device
        self.interval_s = interval_s
        self.values: list[float] = []
        self.source = "none (not CUDA)"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> UtilSampler:
        if self.device.type != "cuda":
            return self
        index = self.device.index or 0
        try:
            torch.cuda.utilization(index)
            self.source = "torch.cuda.utilization (pynvml)"
            self._thread = threading.Thread(target=self._loop, args=(index,), daemon=True)
            self._thread.start()
        except Exception:
            if shutil.which("nvidia-smi"):
                self.source = "nvidia-smi"
                self._proc = subprocess.Popen(
                    ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                     f"--id={index}", f"--loop-ms={int(self.interval_s * 1000)}"],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            else:
                self.source = "unavailable (no pynvml, no nvidia-smi)"
        return self

    def _loop(self, index: int) -> None:
        while not self._stop.is_set():
            self.values.append(float(torch.cuda.utilization(index)))
            self._stop.wait(self.interval_s)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._proc is not None:
            self._proc.terminate()
            out, _ = self._proc.communicate(timeout=5)
            for line in out.split():
                with contextlib.suppress(ValueError):
                    self.values.append(float(line))

    def summary(self) -> dict:
        if not self.values:
            return {"gpu_util_source": self.source}
        return {"gpu_util_mean": round(sum(self.values) / len(self.values), 1),
                "gpu_util_max": max(self.values), "gpu_util_samples": len(self.values),
                "gpu_util_source": self.source}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Callable[[], object]) -> tuple[float, dict]:
    sync(device)
    with UtilSampler(device) as util:
        t0 = time.perf_counter()
        fn()
        sync(device)
        seconds = time.perf_counter() - t0
    return seconds, util.summary()


# ---------------------------------------------------------------- raw forward


def stage_batches(seqs: list[list[int]], batch_size: int, device: torch.device) -> list:
    """All sorted, padded batches already on the device (for the device-resident ceiling)."""
    from model.tensors import pad_batch

    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    return [pad_batch([seqs[i] for i in order[start : start + batch_size]], device=device)
            for start in range(0, len(order), batch_size)]


def forward_staged(module, staged: list, device: torch.device, precision: str) -> None:
    from model.tensors import autocast_for

    with torch.inference_mode(), autocast_for(device, precision):
        outs = [module(ids, mask).float().argmax(-1) for ids, mask in staged]
    torch.cat(outs).cpu()


def raw_forward(module, seqs: list[list[int]], batch_size: int, device: torch.device,
                precision: str) -> np.ndarray:
    """Sorted by length, fixed-size batches, dynamic padding; one sync at the end.

    Its own loop (fixed batch sizes, no token budget), but docstream's pad_batch (pinned,
    non-blocking copies on CUDA) and autocast_for.
    """
    from model.tensors import autocast_for, pad_batch

    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    outs = []
    with torch.inference_mode(), autocast_for(device, precision):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            t_ids, t_mask = pad_batch([seqs[i] for i in idx], device=device)
            outs.append(module(t_ids, t_mask).float().argmax(-1))
    pred = torch.cat(outs).cpu().numpy()
    out = np.empty(len(seqs), dtype=np.int64)
    out[order] = pred
    return out


# ---------------------------------------------------------------- docstream's model path


def make_prefetch_predictor_class():
    """Predictor with the host->device feeding a GPU needs (a proposal for model/predictor.py).

    Differences from Predictor.logits on CUDA:
    * pinned staging buffers allocated once (ids and mask for `max_tokens`), reused in a ring
      of `slots`; a slot is refilled only after its previous copy finished (event), instead of
      a fresh `pin_memory()` per batch;
    * host-to-device copies run on a side stream; the compute stream waits on the copy's
      event, so the copy of batch i+1 overlaps the compute of batch i;
    * logits stay on the device and come back in one device-to-host copy per call, instead of
      one `.cpu()` per batch.
    On CPU it is Predictor unchanged.
    """
    from model.batching import token_budget_batches
    from model.predictor import Predictor
    from model.tensors import autocast_for, pad_batch

    class PrefetchPredictor(Predictor):
        def __init__(self, module, *, slots: int = 3, **kwargs) -> None:
            super().__init__(module, **kwargs)
            self.slots = slots
            if self.device.type == "cuda":
                cap = self.max_tokens
                self._staging = [torch.empty(2 * cap, dtype=torch.int64).pin_memory()
                                 for _ in range(slots)]
                self._copied: list[torch.cuda.Event | None] = [None] * slots
                self._copy_stream = torch.cuda.Stream(device=self.device)

        def logits(self, seqs: Sequence[Sequence[int]]) -> np.ndarray:
            if self.device.type != "cuda" or not seqs:
                return super().logits(seqs)
            lengths = [len(s) for s in seqs]
            batches = token_budget_batches(lengths, self.max_tokens, self.max_batch_size)
            compute = torch.cuda.current_stream(self.device)
            cap = self.max_tokens
            results, order = [], []
            with torch.inference_mode(), autocast_for(self.device, self.precision):
                for n, idx in enumerate(batches):
                    slot = n % self.slots
                    if self._copied[slot] is not None:
                        self._copied[slot].synchronize()  # its previous copy has finished
                    width = max(lengths[i] for i in idx)
                    rows = len(idx)
                    if rows * width > cap:  # one over-long sequence: Predictor's own path
                        ids, mask = pad_batch([seqs[i] for i in idx], self.pad_id, self.device)
                    else:
                        buf = self._staging[slot]
                        host = buf.numpy()
                        h_ids = host[: rows * width].reshape(rows, width)
                        h_mask = host[cap : cap + rows * width].reshape(rows, width)
                        h_ids.fill(self.pad_id)
                        h_mask.fill(0)
                        for r, i in enumerate(idx):
                            h_ids[r, : lengths[i]] = seqs[i]
                            h_mask[r, : lengths[i]] = 1
                        with torch.cuda.stream(self._copy_stream):
                            ids = buf[: rows * width].view(rows, width).to(
                                self.device, non_blocking=True)
                            mask = buf[cap : cap + rows * width].view(rows, width).to(
                                self.device, non_blocking=True)
                            event = torch.cuda.Event()
                            event.record(self._copy_stream)
                        self._copied[slot] = event
                        compute.wait_event(event)
                        ids.record_stream(compute)
                        mask.record_stream(compute)
                    results.append(self.module(ids, mask).float())
                    order.extend(idx)
                logits = torch.cat(results).cpu().numpy()  # one sync, one copy back
            out = np.empty_like(logits)
            out[np.asarray(order)] = logits
            return out

    return PrefetchPredictor


def make_classifiers(module, device: torch.device, precision: str):
    """(stock, prefetch): builders of docstream's classifier over `module`.

    stock() is model.build.build_classifier, exactly as the Beam handler calls it (with a
    ClassifierSpec in place of the pydantic manifest that does not travel here); prefetch()
    is the same DocClassifier over the PrefetchPredictor proposal (a LogitsProvider too).
    """
    from model.build import build_classifier
    from model.classify import ClassifierSpec, DocClassifier

    spec = ClassifierSpec(labels=LABELS)
    prefetch_cls = make_prefetch_predictor_class()

    def stock():
        return build_classifier(spec, module, device=device, precision=precision)

    def prefetch():
        return DocClassifier(spec, prefetch_cls(module, device=str(device), precision=precision))

    return stock, prefetch


def docstream_path(classifier, docs: list[list[list[int]]], call_docs: int) -> None:
    for start in range(0, len(docs), call_docs):
        classifier.classify(docs[start : start + call_docs])


# ---------------------------------------------------------------- main


def machine(device: torch.device) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "device": str(device), "cpu_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count()}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(gpu=p.name, gpu_memory_gb=round(p.total_memory / 2**30, 1),
                    bf16=torch.cuda.is_bf16_supported())
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/gpu.py", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="small sizes (CPU smoke test)")
    ap.add_argument("--docs", type=int, help="texts per measurement")
    ap.add_argument("--budget-s", type=float, default=210.0,
                    help="stop starting new measurements after this many seconds")
    ap.add_argument("--json", type=Path, help="write results here")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench/gpu.py: --device cuda but torch sees no GPU", file=sys.stderr)
        return 2
    imports = import_docstream_model()
    if not imports["ok"]:
        print("bench/gpu.py: docstream's model modules need packages the GPU machine lacks "
              f"({', '.join(ABSENT_ON_GPU_BOX)}); failed imports: {imports.get('failed', {})}; "
              f"blocked import attempts: {imports.get('blocked_attempts', [])}", file=sys.stderr)
        return 3
    from model.predictor import pick_precision

    cuda = device.type == "cuda"
    n_docs = args.docs or (131_072 if cuda else (128 if args.quick else 2048))
    sweep = (128, 256, 512, 1024, 2048) if cuda else ((32,) if args.quick else (16, 32, 64, 128))
    from model.classify import DEFAULT_PRECISIONS

    precision = pick_precision(device, "auto", DEFAULT_PRECISIONS)
    doc: dict = {"machine": machine(device), "imports": imports, "precision": precision,
                 "results": {}, "notes": []}
    results = doc["results"]

    def over_budget() -> bool:
        return time.perf_counter() - t_start > args.budget_s

    def save() -> None:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")

    texts = synthetic_texts(n_docs)
    tok = load_tokenizer()
    t0 = time.perf_counter()
    seqs = [e.ids for e in tok.encode_batch(texts)]
    tok_s = time.perf_counter() - t0
    mean_tokens = sum(map(len, seqs)) / len(seqs)
    doc["data"] = {"n_docs": n_docs, "mean_tokens": round(mean_tokens, 1),
                   "tokenize_docs_s": round(n_docs / tok_s, 1),
                   "texts": "synthetic, fixed vocabulary, seeded"}
    module = build_model(device)
    log = lambda msg: print(f"[gpu-bench {time.perf_counter() - t_start:6.1f}s] {msg}",  # noqa: E731
                            file=sys.stderr, flush=True)
    log(f"{device} {precision}, {n_docs} docs of {mean_tokens:.1f} tokens; tokenised at "
        f"{n_docs / tok_s:,.0f} docs/s")

    # raw_forward sweep
    warm = seqs[: min(len(seqs), 4 * max(sweep) if cuda else 32)]
    sweep_out = {}
    for b in sweep:
        if over_budget():
            doc["notes"].append(f"raw_forward b{b} skipped: time budget")
            continue
        raw_forward(module, warm, b, device, precision)
        seconds, util = timed(device, lambda b=b: raw_forward(module, seqs, b, device, precision))
        sweep_out[str(b)] = {"docs_s": round(n_docs / seconds, 1), **util}
        log(f"raw_forward b{b}: {n_docs / seconds:,.0f} docs/s {util}")
    best = max(sweep_out, key=lambda k: sweep_out[k]["docs_s"])
    raw = sweep_out[best]["docs_s"]
    results["raw_forward"] = {
        "docs_s": raw, "best_batch_size": int(best), "sweep": sweep_out,
        "docs_s_incl_tokenize": round(n_docs / (n_docs / raw + tok_s), 1),
        **{k: v for k, v in sweep_out[best].items() if k.startswith("gpu_util")},
    }
    # The GPU alone: every batch already on the device, no host work.
    if not over_budget() and not (args.quick and not cuda):
        staged = stage_batches(seqs, int(best), device)
        forward_staged(module, staged[:4], device, precision)
        seconds, util = timed(device, lambda: forward_staged(module, staged, device, precision))
        results["raw_forward"]["device_resident_docs_s"] = round(n_docs / seconds, 1)
        results["raw_forward"]["device_resident_gpu_util_mean"] = util.get("gpu_util_mean")
        log(f"raw_forward b{best} device-resident: {n_docs / seconds:,.0f} docs/s {util}")
        del staged
    save()

    # docstream's model path
    docs = [[s] for s in seqs]  # ~64-token texts: one chunk each
    post_kind = "model.classify.DocClassifier.classify, built by model.build.build_classifier"
    doc["postprocess"] = post_kind
    stock, prefetch = make_classifiers(module, device, precision)
    handler_docs = max(1, int(HANDLER_SORT_BUFFER_TOKENS // mean_tokens))
    large_docs = min(LARGE_CALL_DOCS, n_docs)
    variants = [
        ("predictor_stock_handler_calls", stock, handler_docs),
        ("predictor_stock_large_calls", stock, large_docs),
        ("predictor_prefetch_large_calls", prefetch, large_docs),
        ("predictor_prefetch_handler_calls", prefetch, handler_docs),
    ]
    check = seqs[: min(len(seqs), 2048)]  # the prefetch path must give Predictor's logits
    a = stock().predictor.logits(check)
    b = prefetch().predictor.logits(check)
    doc["prefetch_check"] = {"docs": len(check), "max_abs_diff": float(np.abs(a - b).max()),
                             "same_argmax": float((a.argmax(1) == b.argmax(1)).mean())}
    log(f"prefetch vs stock Predictor: {doc['prefetch_check']}")
    if args.quick and not cuda:  # smoke test: on CPU the prefetch path is Predictor's own
        variants = [variants[0], variants[2]]
    for name, make, call_docs in variants:
        if over_budget():
            doc["notes"].append(f"{name} skipped: time budget")
            continue
        classifier = make()
        predictor = classifier.predictor
        warm_docs = docs[: min(len(docs), 2 * call_docs if cuda else 32)]
        docstream_path(classifier, warm_docs, call_docs)
        seconds, util = timed(device, lambda k=classifier, c=call_docs: docstream_path(
            k, docs, c))
        logits_only_s, _ = timed(device, lambda p=predictor, c=call_docs: [
            p.logits(seqs[s : s + c]) for s in range(0, len(seqs), c)])
        results[name] = {
            "docs_s": round(n_docs / seconds, 1), "docs_per_call": call_docs,
            "logits_only_docs_s": round(n_docs / logits_only_s, 1),
            "postprocess_us_per_doc": round(1e6 * max(seconds - logits_only_s, 0) / n_docs, 2),
            "token_budget": predictor.max_tokens, "max_batch_size": predictor.max_batch_size,
            "ratio_to_raw": round(n_docs / seconds / raw, 3), **util,
        }
        log(f"{name}: {n_docs / seconds:,.0f} docs/s ({n_docs / logits_only_s:,.0f} logits "
            f"only) {util}")
        save()

    best_path = max((k for k in results if k.startswith("predictor_")),
                    key=lambda k: results[k]["docs_s"], default=None)
    doc["ratios"] = {
        "raw_forward docs/s": {"value": raw, "target": RAW_TARGET_DOCS_S,
                               "status": "met" if raw >= RAW_TARGET_DOCS_S else "missed"},
    }
    for k in [k for k in results if k.startswith("predictor_")]:
        v = results[k]["docs_s"] / raw
        doc["ratios"][f"{k}/raw_forward"] = {
            "value": round(v, 3), "target": MODEL_PATH_TARGET_RATIO,
            "status": "met" if v >= MODEL_PATH_TARGET_RATIO else "missed"}
    doc["best_docstream_path"] = best_path
    if not cuda:
        doc["notes"].append("CPU run: a smoke test of the script; the targets are for CUDA")
    doc["total_s"] = round(time.perf_counter() - t_start, 1)
    save()
    print(f"{'row':<36} {'docs/s':>10} {'GPU util %':>11}  notes")
    for name, r in results.items():
        extra = (f"best b{r['best_batch_size']}, incl. tokenise {r['docs_s_incl_tokenize']:,.0f}, "
                 f"device-resident {r.get('device_resident_docs_s', '-')}"
                 if name == "raw_forward" else
                 f"{r['docs_per_call']} docs/call, logits only {r['logits_only_docs_s']:,.0f}, "
                 f"post {r['postprocess_us_per_doc']} us/doc, x{r['ratio_to_raw']} raw")
        print(f"{name:<36} {r['docs_s']:>10,.0f} {r.get('gpu_util_mean', '-')!s:>11}  {extra}")
    for name, r in doc["ratios"].items():
        print(f"  {name:<52} {r['value']:>10,} target {r['target']:,}  {r['status'].upper()}")
    print(f"total {doc['total_s']} s on {doc['machine'].get('gpu', 'cpu')}; post-processing: "
          f"{post_kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
