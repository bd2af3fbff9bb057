"""Ratios against the performance targets, the printed table and the JSON document."""

from __future__ import annotations

from typing import Any

# (name, numerator row, its field, denominator row or None, its field, target, "min"/"max").
# Issue #14's targets, measured in one run: docstream's rates once writing (steady) against
# the raw forward pass over the same windows (equal work), the no-op pipeline once writing.
TARGETS: list[tuple[str, str, str, str | None, str | None, float, str]] = [
    ("batch_sqlite steady / raw_forward_windows", "docstream_batch_sqlite", "steady_docs_s",
     "raw_forward_windows", "docs_s", 0.9, "min"),
    ("stream steady / raw_forward_windows", "docstream_stream", "steady_docs_s",
     "raw_forward_windows", "docs_s", 0.8, "min"),
    ("pipeline_overhead steady docs/s", "pipeline_overhead", "steady_docs_s", None, None,
     5000.0, "min"),
    ("batch_sqlite / hf_pipeline_b1", "docstream_batch_sqlite", "docs_s", "hf_pipeline_b1",
     "docs_s", 3.0, "min"),
    ("batch_sqlite / beam_stock", "docstream_batch_sqlite", "docs_s", "beam_stock", "docs_s",
     2.0, "min"),
]
# Printed with the targets, judged against nothing: the same rates counted otherwise, and the
# user-facing comparison with the truncating raw_forward (docstream classifies every chunk of
# a long document; raw_forward only its first 128 tokens).
INFORMATIONAL: list[tuple[str, str, str, str | None, str | None]] = [
    ("batch_sqlite with start-up / raw_forward_windows", "docstream_batch_sqlite",
     "docs_s_incl_startup", "raw_forward_windows", "docs_s"),
    ("batch_postgres steady / raw_forward_windows", "docstream_batch_postgres",
     "steady_docs_s", "raw_forward_windows", "docs_s"),
    ("stream with start-up / raw_forward_windows", "docstream_stream", "docs_s_incl_startup",
     "raw_forward_windows", "docs_s"),
    ("batch_sqlite steady / raw_forward (truncating)", "docstream_batch_sqlite",
     "steady_docs_s", "raw_forward", "docs_s"),
    ("pipeline_overhead with start-up docs/s", "pipeline_overhead", "docs_s_incl_startup",
     None, None),
]
JOB_RSS_TARGET_MB = 3 * 1024
#: average cores used by other processes during a row above which the table warns
CONTENDED_CORES = 0.25
DOCSTREAM_ROWS = ("docstream_batch_sqlite", "docstream_batch_postgres", "docstream_stream",
                  "pipeline_overhead")
ROW_NOTES = {
    "raw_forward": "forward only, sorted, dynamic padding, best batch",
    "raw_forward_windows": "raw_forward over docstream's own windows (equal work)",
    "hf_pipeline_b1": "transformers pipeline, fp32, batch 1",
    "hf_pipeline_b32": "transformers pipeline, fp32, batch 32",
    "beam_stock": "Beam RunInference + PytorchModelHandlerKeyedTensor",
    "docstream_batch_sqlite": "docstream run, file -> SQLite",
    "docstream_batch_postgres": "docstream run, file -> PostgreSQL",
    "docstream_stream": "Kafka -> PostgreSQL (bench/stream_latency.py)",
    "pipeline_overhead": "docstream run --model noop",
    "stages": "sum of stages, serial, no Beam",
}


def _rate(results: dict[str, dict], row: str, key: str = "docs_s") -> float | None:
    r = results.get(row) or {}
    v = r.get(key) if r.get("status") == "ok" else None
    return float(v) if v else None


def _ratio(results: dict[str, dict], num: str, num_key: str, den: str | None,
           den_key: str | None) -> tuple[float | None, str | None]:
    """(value, why it is missing)."""
    a = _rate(results, num, num_key)
    b = _rate(results, den, den_key or "docs_s") if den else 1.0
    if a is None or b is None:
        missing = [f"{row} {key}" for row, key in ((num, num_key), (den, den_key))
                   if row and _rate(results, row, key or "docs_s") is None]
        return None, f"no figure for {', '.join(missing)}"
    return a / b, None


def ratios(results: dict[str, dict], accuracy: dict | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, num, num_key, den, den_key, target, sense in TARGETS:
        value, why = _ratio(results, num, num_key, den, den_key)
        if value is None:
            out[name] = {"value": None, "target": target, "status": "n/a", "why": why}
            continue
        ok = value >= target if sense == "min" else value <= target
        out[name] = {"value": round(value, 3 if den else 1), "target": target,
                     "status": "met" if ok else "missed"}
    for name, num, num_key, den, den_key in INFORMATIONAL:
        value, _why = _ratio(results, num, num_key, den, den_key)
        if value is not None:
            out[name] = {"value": round(value, 3 if den else 1), "target": None,
                         "informational": True, "status": "info"}
    rss = {row: r["job_peak_rss_mb"] for row, r in results.items()
           if r.get("status") == "ok" and r.get("job_peak_rss_mb") and row in DOCSTREAM_ROWS}
    if rss:
        worst = max(rss, key=lambda k: rss[k])
        out["job peak RSS MB"] = {"value": rss[worst], "target": JOB_RSS_TARGET_MB, "row": worst,
                                  "status": "met" if rss[worst] <= JOB_RSS_TARGET_MB else "missed"}
        pss = results[worst].get("job_peak_pss_mb")
        if pss:  # the same tree's proportional set size: shared pages counted once
            out["job peak RSS MB"]["why"] = f"summed RSS; PSS {pss:,.0f} MB"
    else:
        out["job peak RSS MB"] = {"value": None, "target": JOB_RSS_TARGET_MB, "status": "n/a",
                                  "why": "no docstream job ran"}
    if accuracy and accuracy.get("status") == "ok":
        mode = accuracy.get("docstream_default_mode")
        ok = accuracy.get("docstream_default_ok")
        entry: dict[str, Any] = {"value": mode, "target": "within 0.5 points of fp32",
                                 "status": "met" if ok else "missed"}
        if not accuracy.get("meaningful"):
            entry["why"] = "random-head model: accuracy is not meaningful"
        out["default dtype accuracy"] = entry
    return out


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _row_note(row: str, r: dict) -> str:
    note = ROW_NOTES.get(row, "")
    if r.get("status") != "ok":
        return f"{r.get('status')}: {r.get('reason') or r.get('error', '')}"[:110]
    if row == "raw_forward":
        return (f"best b{r.get('best_batch_size')} {r.get('dtype')} {r.get('threads')}thr; "
                f"{r.get('mean_tokens_per_doc')} tokens/doc (long docs truncated); NOTES ref: "
                "bf16 b64 ~329, fp32 b32 ~135")
    if row == "raw_forward_windows":
        return (f"docstream's windows: {r.get('windows_per_doc')} windows, "
                f"{r.get('mean_tokens_per_doc')} tokens/doc; best b{r.get('best_batch_size')} "
                f"{r.get('dtype')} {r.get('threads')}thr; {_fmt(r.get('windows_s'))} windows/s; "
                f"docstream's Predictor on these windows (forward only, {r.get('predictor_call_docs')}"
                f" docs a call) by token budget: "
                + ", ".join(f"{k} {_fmt(v)}" for k, v in (r.get("predictor_budget_docs_s") or {}).items())
                + f" docs/s (default {r.get('predictor_token_budget')}); raw forward only "
                f"{_fmt(r.get('forward_only_docs_s'))}")
    if row == "docstream_stream":
        return (f"Kafka -> PostgreSQL, backlog {r.get('backlog')}; first result at "
                f"{_fmt(r.get('first_result_s'))} s; latency at "
                f"{_fmt(r.get('latency_rate_docs_s'))} docs/s: p50 "
                f"{_fmt(r.get('latency_p50_ms'))} ms, p99 {_fmt(r.get('latency_p99_ms'))} ms; "
                f"job RSS {_fmt(r.get('job_peak_rss_mb'))} MB (PSS "
                f"{_fmt(r.get('job_peak_pss_mb'))})"
                + ("; NOTE: " + " / ".join(n[:160] for n in r["notes"]) if r.get("notes")
                   else ""))
    if row.startswith("docstream_batch") or row == "pipeline_overhead":
        first, span = r.get("first_write_after_s"), r.get("pipeline_s")
        writes = (f"{r.get('write_batches')} writes from {_fmt(first)} s to "
                  f"{_fmt(r.get('last_write_after_s'))} s of the pipeline's {_fmt(span)} s")
        if first is not None and span and first > 0.5 * span:
            writes += " (writes come last: steady covers little)"
        if row == "pipeline_overhead" and r.get("repeated_input"):
            note += f" ({r['n_docs']:,} docs: the input repeated)"
        note += (f"; job RSS {_fmt(r.get('job_peak_rss_mb'))} MB (PSS "
                 f"{_fmt(r.get('job_peak_pss_mb'))}); {writes}; "
                 f"{_fmt(r.get('after_last_write_s'))} s after the last write (explanations "
                 "drained, summary)")
    return note


def _defaults_line(res: dict) -> str | None:
    """Which of `docstream run`'s defaults the docstream rows ran with, from their records."""
    rows = [(row, res[row]) for row in DOCSTREAM_ROWS
            if (res.get(row) or {}).get("status") == "ok"]
    if not rows:
        return None
    seen = next((r["defaults"] for _row, r in rows if r.get("defaults")), None)
    if not seen:
        return ("docstream defaults: every docstream row runs `docstream run` without flags "
                "that change them (defaults not recorded in this JSON)")
    ex = seen.get("explanations") or {}
    return ("docstream defaults on in every docstream row (no flag changes them): "
            f"--pii-policy {seen['pii_policy']} (audit records: "
            f"{', '.join(seen.get('audit_pii_policies') or ['?'])}), --store-text "
            f"{seen['store_text']} ({seen.get('texts_kept')} texts kept), --explain "
            f"{seen['explain']} ({ex.get('submitted')} submitted, {ex.get('explained')} explained, "
            f"{ex.get('skipped')} skipped; not for --model noop), entities "
            f"{'on' if seen['entities'] else 'off'}, input checks and the audit hash chain "
            "(always on)")


def table(doc: dict) -> str:
    res = doc["results"]
    lines = []
    m = doc["machine"]
    lines.append(f"machine: {m.get('cpu')} | {m.get('logical_cores')} cores | torch "
                 f"{m.get('torch')} | {m.get('torch_threads')} threads | dtype "
                 f"{m.get('docstream_dtype')} | model {m.get('model')}")
    d = doc["data"]
    lines.append(f"data: {d['n_docs']:,} docs ({d['n_short']:,} AG News test posts + "
                 f"{d['n_long']:,} long docs of 8 posts){' [quick]' if doc['quick'] else ''}")
    m_flags = m.get("cpu_flags")
    if m_flags is not None:
        lines.append(f"cpu flags: {', '.join(m_flags) or 'none of avx512_bf16/amx'} (the reference "
                     "figures in bench/README.md are from a Xeon with AMX)")
    busy = [f"{when}: {what}" for when, what in (doc.get("contention") or {}).items() if what]
    loaded = [f"{row} {r['foreign_cores']:.2f}" for row, r in res.items()
              if (r.get("foreign_cores") or 0) >= CONTENDED_CORES]
    if loaded:
        busy.append(f"other processes used cores during rows: {', '.join(loaded)}")
    if busy:
        lines.append(f"CAUTION: CPU contended ({'; '.join(busy)}); figures are low and noisy")
    lines.append("")
    head = (f"{'row':<26} {'docs/s':>9} {'steady':>9} {'w/ start':>9} {'peak RSS MB':>12} "
            f"{'wall s':>8} {'others':>6}  notes")
    lines += [head, "-" * len(head)]
    for row, r in res.items():
        if row == "accuracy":
            continue
        lines.append(f"{row:<26} {_fmt(r.get('docs_s')):>9} {_fmt(r.get('steady_docs_s')):>9} "
                     f"{_fmt(r.get('docs_s_incl_startup')):>9} {_fmt(r.get('peak_rss_mb')):>12} "
                     f"{_fmt(r.get('wall_s')):>8} {_fmt(r.get('foreign_cores'), 2):>6}  "
                     f"{_row_note(row, r)}")
    lines += ["", "docs/s: the row's own figure (docstream_batch / pipeline_overhead: the "
              "summary's inputs over the pipeline's seconds, model loading included; "
              "docstream_stream: 10%..90% of the rows); steady: once writing, first to last "
              "store write; w/ start: from the process launch to the last store write; others: "
              "average cores the rest of the machine used while the row ran (of "
              f"{m.get('logical_cores')})."]
    defaults = _defaults_line(res)
    if defaults:
        lines.append(defaults)
    st = res.get("stages", {})
    if st.get("status") == "ok":
        lines += ["", f"stages (serial, in-process, {st['chunks_per_doc']} chunks/doc, "
                      f"{st['model_tokens_per_doc']} model tokens/doc):"]
        for name, s in st["stages"].items():
            extra = ""
            if name == "model":
                extra = f"  (forward {s['forward_s']} s, post-processing {s['post_s']} s)"
            elif name == "parse" and s.get("checks_us_per_doc") is not None:
                extra = f"  (input checks alone {s['checks_us_per_doc']} us/doc)"
            elif name == "write" and s.get("pii_us_per_doc") is not None:
                extra = (f"  (pii alone {s['pii_us_per_doc']} us/doc, policy "
                         f"{s.get('pii_policy', '?')})")
            lines.append(f"  {name:<18} {_fmt(s['us_per_doc']):>9} us/doc "
                         f"{_fmt(s['docs_s']):>11} docs/s {100 * (s['share'] or 0):5.1f}%{extra}")
    acc = res.get("accuracy", {})
    if acc.get("status") == "ok":
        lines += ["", f"accuracy ({acc['n_posts']:,} AG News test posts, model "
                      f"{acc['model_kind']}):"]
        for name, a in acc["modes"].items():
            lines.append(f"  {name:<14} {a['accuracy']:6.2f}%  delta {a['delta_points']:+.2f}  "
                         f"agree {a['agreement_with_fp32']:6.2f}%  {a['model_docs_s']:8.1f} docs/s "
                         f"(x{a['speedup_vs_fp32']})  "
                         f"{'within 0.5' if a['within_0_5_points'] else 'OUTSIDE 0.5'}")
        for k, v in acc.get("skipped", {}).items():
            lines.append(f"  {k:<14} skipped: {v}")
        if not acc.get("meaningful"):
            lines.append(f"  note: {acc['note']}")
    elif acc:
        lines += ["", f"accuracy: {acc.get('status')}: {acc.get('error', '')}"]
    lines += ["", "targets:"]
    for name, r in doc["ratios"].items():
        why = f"  ({r['why']})" if r.get("why") else ""
        row = f" [{r['row']}]" if r.get("row") else ""
        target = r["target"]
        if r.get("informational"):
            digits = 1 if "docs/s" in name else 3
            lines.append(f"  {name:<50} {_fmt(r['value'], digits):>10}  (informational)")
            continue
        if not isinstance(target, str):
            target = f"{'<=' if 'RSS' in name else '>='} {target:,g}"
        lines.append(f"  {name:<50} {_fmt(r['value'], 3):>10}  target {target}  "
                     f"{r['status'].upper()}{row}{why}")
    return "\n".join(lines)
