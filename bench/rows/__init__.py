"""Benchmark rows. Each runs in its own process: `python -m bench.rows ROW --data F --out R`.

A row returns a JSON-able dict; `docs_s` is its throughput figure (None when the row has
none). Model loading and interpreter start-up are outside the timed part unless a row says
otherwise (the docstream rows time the whole pipeline, as `docstream run` reports it).
"""

from __future__ import annotations

ROWS: dict[str, str] = {
    "raw_forward": "bench.rows.raw_forward:run",
    "raw_forward_windows": "bench.rows.raw_forward:run_windows",
    "hf_pipeline_b1": "bench.rows.hf_pipeline:run_b1",
    "hf_pipeline_b32": "bench.rows.hf_pipeline:run_b32",
    "beam_stock": "bench.rows.beam_stock:run",
    "docstream_batch_sqlite": "bench.rows.docstream_batch:run_sqlite",
    "docstream_batch_postgres": "bench.rows.docstream_batch:run_postgres",
    "docstream_stream": "bench.rows.stream:run",
    "pipeline_overhead": "bench.rows.docstream_batch:run_noop",
    "stages": "bench.rows.stages:run",
    "accuracy": "bench.rows.accuracy:run",
}
# Helper entry points that are not table rows.
HELPERS: dict[str, str] = {
    "prepare": "bench.rows.prepare:run",
}
