"""Set-up step run once before the rows: resolve the model artifact, describe the machine."""

from __future__ import annotations

import platform

from bench.models import docstream_precision, docstream_threads, load, resolve_model


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The CPU features that decide bf16 speed (the reference Xeon had AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        return []
    wanted = ("avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8")
    return [w for w in wanted if w in flags]


def run(args) -> dict:
    import psutil
    import torch
    import transformers

    from docstream.model.predictor import cpu_has_fast_bf16

    model_dir, kind = resolve_model(args.work)
    _module, manifest = load(model_dir)
    return {
        "model_dir": str(model_dir),
        "model_kind": kind,
        "machine": {
            "cpu": cpu_model(),
            "logical_cores": psutil.cpu_count(logical=True),
            "physical_cores": psutil.cpu_count(logical=False),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "torch_threads": docstream_threads(),
            "cpu_fast_bf16": cpu_has_fast_bf16(),
            "cpu_flags": cpu_flags(),
            "docstream_dtype": docstream_precision(manifest),
            "model": f"{manifest.name}@{manifest.version} ({kind}, mode {manifest.mode})",
            "precision_ok": list(manifest.precision_ok),
            "max_length": manifest.preprocess.max_chunk_tokens,
        },
    }
