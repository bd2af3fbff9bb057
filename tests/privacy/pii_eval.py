"""Precision and recall per entity type on the labelled set (tests/privacy/pii_cases.jsonl).

    .venv/bin/python -m tests.privacy.pii_eval [--policy default] [--stock-phone]
        [--group planted|hard|clean] [--errors]

Detection is the redactor's own: the policy's pattern recognizers on every text, plus spaCy's
NER through Presidio (the same en_core_web_sm model the pipeline's --entities pass uses) for
PERSON and LOCATION. Overlapping findings are resolved as the redactor does it
(privacy.anonymize.resolve: they merge into one, typed by a pattern finding first). A
finding matches a labelled value when the types agree and the spans overlap. "redacted" is
the privacy figure: the share of labelled values of a type that do not survive redaction,
whatever type they were redacted as. NER types are scored on the cases labelled for them
(`ner_labelled`), pattern types on all. `--stock-phone` puts Presidio's own PhoneRecognizer
(PhoneNumberMatcher over the whole text, once per default region) in place of ours.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from docstream.privacy.anonymize import resolve
from docstream.privacy.policy import NER_TYPES, load_policy
from docstream.privacy.redact import PolicyRedactor
from tests.privacy.pii_cases import load


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    gold: int = 0
    kept_out: int = 0  # labelled values that did not survive redaction
    misses: list[str] = field(default_factory=list)
    false: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def redacted(self) -> float | None:
        return self.kept_out / self.gold if self.gold else None


def evaluate(policy: str = "default", stock_phone: bool = False,
             group: str | None = None) -> dict[str, Any]:
    redactor = PolicyRedactor(load_policy(policy), b"k" * 32, entities=True).load()
    detector = redactor.detector
    if stock_phone:
        _use_stock_phone(detector)
    rows = [r for r in load() if group is None or r["group"] == group]
    scores: dict[str, Score] = defaultdict(Score)
    t0 = time.perf_counter()
    pattern_hits = [detector.patterns(r["text"]) for r in rows]
    t1 = time.perf_counter()
    names = detector.names([r["text"] for r in rows])
    t2 = time.perf_counter()
    for row, pats, ners in zip(rows, pattern_hits, names, strict=True):
        text = row["text"]
        found = resolve([*pats, *(ners if row["ner_labelled"] else [])])
        redacted, _ = redactor.ops.apply(text, [*pats, *ners])
        gold = []
        for p in row["pii"]:
            start = text.index(p["value"])
            gold.append((p["type"], start, start + len(p["value"]), p["value"]))
            s = scores[p["type"]]
            if p["type"] in NER_TYPES and not row["ner_labelled"]:
                continue
            s.gold += 1
            if p["value"] not in redacted:
                s.kept_out += 1
        matched: set[int] = set()
        for f in found:
            if f.entity_type in NER_TYPES and not row["ner_labelled"]:
                continue
            hit = next((i for i, (t, s, e, _) in enumerate(gold) if i not in matched
                        and t == f.entity_type and f.start < e and s < f.end), None)
            if hit is None:
                scores[f.entity_type].fp += 1
                scores[f.entity_type].false.append(f"{text[f.start:f.end]!r} in {row['id']}")
            else:
                matched.add(hit)
                scores[f.entity_type].tp += 1
        for i, (t, _s, _e, v) in enumerate(gold):
            if i not in matched and not (t in NER_TYPES and not row["ner_labelled"]):
                scores[t].fn += 1
                scores[t].misses.append(f"{v!r} in {row['id']}")
    return {"scores": dict(scores), "rows": len(rows),
            "groups": {g: sum(r["group"] == g for r in rows) for g in ("planted", "hard", "clean")},
            "patterns_us_per_text": 1e6 * (t1 - t0) / len(rows),
            "ner_us_per_text": 1e6 * (t2 - t1) / len(rows)}


def _use_stock_phone(detector: Any) -> None:
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    by_type, _ = detector._patterns
    by_type["PHONE_NUMBER"] = [PhoneRecognizer()]


def _pct(x: float | None) -> str:
    return "   -  " if x is None else f"{100 * x:5.1f}%"


def table(result: dict[str, Any]) -> str:
    g = result["groups"]
    lines = [f"{result['rows']} cases ({g['planted']} planted, {g['hard']} hard, {g['clean']} "
             f"clean); patterns {result['patterns_us_per_text']:.0f} us/text, NER "
             f"{result['ner_us_per_text']:.0f} us/text",
             f"{'type':<15} {'gold':>5} {'TP':>4} {'FP':>4} {'FN':>4} {'precision':>9} "
             f"{'recall':>7} {'redacted':>9}"]
    for t, s in sorted(result["scores"].items()):
        lines.append(f"{t:<15} {s.gold:>5} {s.tp:>4} {s.fp:>4} {s.fn:>4} {_pct(s.precision):>9} "
                     f"{_pct(s.recall):>7} {_pct(s.redacted):>9}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policy", default="default")
    ap.add_argument("--stock-phone", action="store_true")
    ap.add_argument("--group", choices=["planted", "hard", "clean"], help="only these cases")
    ap.add_argument("--errors", action="store_true", help="list misses and false findings")
    args = ap.parse_args()
    result = evaluate(args.policy, args.stock_phone, args.group)
    print(table(result))
    if args.errors:
        for t, s in sorted(result["scores"].items()):
            for m in s.misses:
                print(f"  miss  {t:<14} {m}")
            for f in s.false:
                print(f"  false {t:<14} {f}")


if __name__ == "__main__":
    main()
