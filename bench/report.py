"""Ratios against the performance targets, the printed table and the JSON document."""

from __future__ import annotations

from typing import Any

# (name, numerator row, denominator row or None, target, "min" or "max", unit)
TARGETS: list[tuple[str, str, str | None, float, str]] = [
    ("docstream_batch_sqlite/raw_forward", "docstream_batch_sqlite", "raw_forward", 0.85, "min"),
    ("docstream_batch_sqlite/hf_pipeline_b1", "docstream_batch_sqlite", "hf_pipeline_b1", 3.0,
     "min"),
    ("docstream_batch_sqlite/beam_stock", "docstream_batch_sqlite", "beam_stock", 2.0, "min"),
    ("docstream_stream/raw_forward", "docstream_stream", "raw_forward", 0.75, "min"),
    ("pipeline_overhead docs/s", "pipeline_overhead", None, 5000.0, "min"),
]
JOB_RSS_TARGET_MB = 3 * 1024
ROW_NOTES = {
    "raw_forward": "forward only, sorted, dynamic padding, best batch",
    "hf_pipeline_b1": "transformers pipeline, fp32, batch 1",
    "hf_pipeline_b32": "transformers pipeline, fp32, batch 32",
    "beam_stock": "Beam RunInference + PytorchModelHandlerKeyedTensor",
    "docstream_batch_sqlite": "docstream run, file -> SQLite",
    "docstream_batch_postgres": "docstream run, file -> PostgreSQL",
    "docstream_stream": "Kafka -> PostgreSQL (bench/stream_latency.py)",
    "pipeline_overhead": "docstream run --model noop",
    "stages": "sum of stages, serial, no Beam",
}


def _docs_s(results: dict[str, dict], row: str) -> float | None:
    r = results.get(row) or {}
    v = r.get("docs_s") if r.get("status") == "ok" else None
    return float(v) if v else None


def ratios(results: dict[str, dict], accuracy: dict | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, num, den, target, sense in TARGETS:
        a = _docs_s(results, num)
        b = _docs_s(results, den) if den else 1.0
        if a is None or b is None:
            missing = [r for r in (num, den) if r and _docs_s(results, r) is None]
            out[name] = {"value": None, "target": target, "status": "n/a",
                         "why": f"no figure for {', '.join(missing)}"}
            continue
        value = a / b
        ok = value >= target if sense == "min" else value <= target
        out[name] = {"value": round(value, 3 if den else 1), "target": target,
                     "status": "met" if ok else "missed"}
    # Informational: the same ratio per model token. raw_forward truncates long documents at
    # 128 tokens; docstream classifies every chunk of them, so it does more model work per doc.
    ds, raw, st = (results.get(k) or {} for k in ("docstream_batch_sqlite", "raw_forward",
                                                  "stages"))
    if (_docs_s(results, "docstream_batch_sqlite") and _docs_s(results, "raw_forward")
            and st.get("model_tokens_per_doc") and raw.get("mean_tokens_per_doc")):
        value = (ds["docs_s"] * st["model_tokens_per_doc"]) / (
            raw["docs_s"] * raw["mean_tokens_per_doc"])
        out["docstream_batch_sqlite/raw_forward per model token"] = {
            "value": round(value, 3), "target": 0.85, "informational": True,
            "status": "met" if value >= 0.85 else "missed",
            "why": f"{st['model_tokens_per_doc']} vs {raw['mean_tokens_per_doc']} tokens/doc"}
    rss = {row: r["job_peak_rss_mb"] for row, r in results.items()
           if r.get("status") == "ok" and r.get("job_peak_rss_mb") and row.startswith("docstream")}
    if rss:
        worst = max(rss, key=lambda k: rss[k])
        out["job peak RSS MB"] = {"value": rss[worst], "target": JOB_RSS_TARGET_MB, "row": worst,
                                  "status": "met" if rss[worst] <= JOB_RSS_TARGET_MB else "missed"}
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
    if busy:
        lines.append(f"CAUTION: CPU contended ({'; '.join(busy)}); figures are low and noisy")
    lines.append("")
    head = f"{'row':<26} {'docs/s':>10} {'peak RSS MB':>12} {'wall s':>8}  notes"
    lines += [head, "-" * len(head)]
    for row, r in res.items():
        if row == "accuracy":
            continue
        note = ROW_NOTES.get(row, "")
        if r.get("status") != "ok":
            note = f"{r.get('status')}: {r.get('reason') or r.get('error', '')}"[:110]
        elif row == "raw_forward":
            note = (f"best b{r.get('best_batch_size')} {r.get('dtype')} {r.get('threads')}thr; "
                    f"NOTES ref: bf16 b64 ~329, fp32 b32 ~135")
        elif row == "docstream_stream":
            note = (f"Kafka -> PostgreSQL, backlog {r.get('backlog')}; latency at "
                    f"{_fmt(r.get('latency_rate_docs_s'))} docs/s: p50 "
                    f"{_fmt(r.get('latency_p50_ms'))} ms, p99 {_fmt(r.get('latency_p99_ms'))} ms; "
                    f"job RSS {_fmt(r.get('job_peak_rss_mb'))} MB"
                    + ("; NOTE: " + " / ".join(n[:160] for n in r["notes"]) if r.get("notes")
                       else ""))
        elif row.startswith("docstream_batch") or row == "pipeline_overhead":
            first, span = r.get("first_write_after_s"), r.get("pipeline_s")
            if first is not None and span and first > 0.5 * span:
                writes = f"first store write at {first:.1f} of {span:.1f} s (writes come last)"
            else:
                writes = (f"steady {_fmt(r.get('steady_docs_s'))} docs/s after the first write "
                          f"at {_fmt(first)} s")
            note += (f"; job RSS {_fmt(r.get('job_peak_rss_mb'))} MB; {writes}; incl. start-up "
                     f"{_fmt(r.get('docs_s_incl_startup'))} docs/s")
        lines.append(f"{row:<26} {_fmt(r.get('docs_s')):>10} {_fmt(r.get('peak_rss_mb')):>12} "
                     f"{_fmt(r.get('wall_s')):>8}  {note}")
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
        if not isinstance(target, str):
            target = f"{'<=' if 'RSS' in name else '>='} {target:,g}"
        lines.append(f"  {name:<40} {_fmt(r['value'], 3):>10}  target {target}  "
                     f"{r['status'].upper()}{row}{why}")
    return "\n".join(lines)
