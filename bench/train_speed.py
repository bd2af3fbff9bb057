"""Training speed on this CPU: LoRA training steps per second with 1 and 2 torch threads, in
fp32 and in bf16 autocast, natively and with the CPU limited to AVX2 (a CPU without native
bf16, like the one in issue #15), to choose `docstream train`'s defaults from measurements.

    .venv/bin/python -m bench.train_speed [--seconds 15] [--windows 512] [--json out.json]

Each configuration runs in its own process (a fresh torch, its thread count set before any
work): the bundled MiniLM-L6 with LoRA adapters as `docstream train --mode lora` builds it,
real windows (AG News through docstream's Preprocessor, else the generated news posts of
tests/news_posts.py) in `docstream train`'s batches (2,048 tokens, at most 64 windows), AdamW.
`--warmup` untimed steps (2), then as many steps as fit in `--seconds`; windows/s = windows trained /
seconds. "avx2" sets ATEN_CPU_CAPABILITY=avx2 and ONEDNN_MAX_CPU_ISA=AVX2 for that process,
so that neither ATen's kernels nor oneDNN's use AVX-512 or its bf16 instructions. Run it on
an idle machine: every figure is CPU-bound.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [(isa, threads, precision) for isa in ("native", "avx2") for threads in (1, 2)
           for precision in ("fp32", "bf16")]


def _texts(n: int) -> list[str]:
    from bench.data import ag_news_path

    path = ag_news_path()
    if path is not None and path.is_file():
        out = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                if row.get("split") == "train":
                    out.append(row["text"])
                if len(out) >= n:
                    break
        return out
    sys.path.insert(0, str(REPO))
    from tests.news_posts import post_texts

    return list(post_texts(n, 0))


def one(threads: int, precision: str, seconds: float, windows: int, warmup: int = 2
        ) -> dict[str, Any]:
    """Run in a child process: time LoRA steps for one configuration."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    from docstream.model.artifact import read_manifest
    from docstream.model.bundled import bundled_model_dir
    from docstream.model.tensors import autocast_for, pad_batch
    from docstream.model.tokenizer import load_tokenizer
    from docstream.preprocess.preprocessor import Preprocessor, RawText
    from docstream.training.batches import epoch_batches
    from docstream.training.config import TrainConfig
    from docstream.training.modeling import build_trainable, param_groups

    config = TrainConfig(data=Path("x.jsonl"), out=Path("x"), mode="lora").resolved()
    pre = Preprocessor(read_manifest(str(bundled_model_dir())).preprocess, load_tokenizer())
    chunks = [c for p in pre.prepare([RawText(t) for t in _texts(windows)])
              for c in getattr(p, "chunks", [])][:windows]
    labels = torch.randint(0, 4, (len(chunks),))
    module = build_trainable(config, n_labels=4)
    module.train()
    opt = torch.optim.AdamW(param_groups(module, config))
    batches = epoch_batches([len(c) for c in chunks], config.batch_tokens,
                            config.max_batch_size, seed=0)
    loss_fn = torch.nn.CrossEntropyLoss()
    device = torch.device("cpu")

    def step(b: list[int]) -> None:
        ids, mask = pad_batch([chunks[i] for i in b])
        with autocast_for(device, precision):
            logits = module(ids, mask)
        loss = loss_fn(logits.float(), labels[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for b in batches[:warmup]:
        step(b)
    done = 0
    i = warmup
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        b = batches[i % len(batches)]
        step(b)
        done += len(b)
        i += 1
    elapsed = time.perf_counter() - t0
    return {"threads": threads, "precision": precision, "steps": i - warmup, "windows": done,
            "seconds": round(elapsed, 2), "windows_per_s": round(done / elapsed, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--windows", type=int, default=512)
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--json", type=Path)
    p.add_argument("--one", nargs=2, metavar=("THREADS", "PRECISION"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1], args.seconds, args.windows,
                             args.warmup)))
        return 0
    results = []
    for isa, threads, precision in CONFIGS:
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        if isa == "avx2":
            env |= {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
        out = subprocess.run(
            [sys.executable, "-m", "bench.train_speed", "--one", str(threads), precision,
             "--seconds", str(args.seconds), "--windows", str(args.windows),
             "--warmup", str(args.warmup)],
            cwd=REPO, env=env, capture_output=True, text=True, check=True)
        r = {"isa": isa, **json.loads(out.stdout.strip().splitlines()[-1])}
        results.append(r)
        print(json.dumps(r), flush=True)
    with open("/proc/loadavg", encoding="ascii") as f:
        load = f.read().split()[:3]
    print(f"\nload average after: {' '.join(load)}")
    print(f"{'cpu':>6} {'threads':>7} {'precision':>9} {'windows/s':>9}")
    for r in results:
        print(f"{r['isa']:>6} {r['threads']:>7} {r['precision']:>9} {r['windows_per_s']:>9.1f}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "loadavg": load}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
