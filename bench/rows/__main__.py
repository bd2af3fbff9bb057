"""`python -m bench.rows ROW --data F --out result.json [--model DIR] [--work DIR] [--quick]`."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path

from bench.rows import HELPERS, ROWS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.rows")
    p.add_argument("row", choices=sorted({*ROWS, *HELPERS}))
    p.add_argument("--data", type=Path, help="the benchmark's JSON Lines input")
    p.add_argument("--out", type=Path, required=True, help="where to write the result JSON")
    p.add_argument("--model", type=Path, help="model artifact directory")
    p.add_argument("--model-kind", default="unknown", help="bundled or random-head")
    p.add_argument("--work", type=Path, default=Path("."), help="scratch folder")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    target = {**ROWS, **HELPERS}[args.row]
    module_name, func_name = target.split(":")
    t0 = time.perf_counter()
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        result = func(args)
        result.setdefault("status", "ok")
    except Exception as e:  # the parent reports the row as failed, with the reason
        traceback.print_exc()
        result = {"status": "failed", "error": f"{e.__class__.__name__}: {e}"}
    result["row_process_s"] = round(time.perf_counter() - t0, 2)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    return 0 if result["status"] in ("ok", "not available") else 1


if __name__ == "__main__":
    sys.exit(main())
