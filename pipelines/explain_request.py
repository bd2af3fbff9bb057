"""What the explanation branch hands its worker, and how a model explanation becomes a stored
one: its words mapped into the text as the store keeps it (privacy.spans)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from docstream.privacy.redact import Redactor
from docstream.privacy.spans import map_span, map_words
from docstream.schemas.classification import Entity
from docstream.schemas.explanation import StoredExplanation, WindowWeight, WordAttribution
from docstream.store.explanations import text_sha256


class ModelExplanation(Protocol):
    """What the model's explainer returns (model.explain.Explanation)."""

    target: str
    target_prob: float
    method: str
    settings: dict[str, Any]
    delta: float


@dataclass(frozen=True)
class ExplainRequest:
    """One result to explain: its keys, the model that labelled it, the ORIGINAL text."""

    source: str
    doc_id: str
    model_name: str
    model_version: str
    label: str
    text: str
    title: str | None
    social: bool
    entities: tuple[Entity, ...] | None
    run_id: str


@dataclass
class ExplainStats:
    submitted: int = 0
    explained: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        per_s = self.explained / self.seconds if self.seconds else 0.0
        return {"submitted": self.submitted, "explained": self.explained,
                "skipped": self.skipped, "failed": self.failed,
                "seconds": round(self.seconds, 3), "per_s": round(per_s, 3)}


#: (request) -> model.explain.Explanation, or None when the request's model version cannot
#: be loaded
ExplainFn = Callable[[ExplainRequest], Any]


def stored_explanation(req: ExplainRequest, exp: Any, redactor: Redactor,
                       seconds: float) -> StoredExplanation:
    """The model's explanation of `req.text`, mapped into the text as the store keeps it."""
    entities = list(req.entities) if req.entities is not None else None
    redacted, edits = redactor.redact_with_edits(req.text, entities)
    # the title's words are attributed too (the model reads it) but shown only over the text
    raw_words = [{"text": w.text, "start": w.start, "end": w.end, "score": w.score,
                  "raw": w.raw} for w in exp.words if getattr(w, "field", "text") == "text"]
    words = map_words(raw_words, edits, redacted)
    peak = max((abs(float(w["raw"])) for w in words), default=0.0) or 1.0
    windows = [WindowWeight(start=map_span(edits, w.start), end=map_span(edits, w.end),
                            weight=min(max(float(w.weight), 0.0), 1.0)) for w in exp.windows]
    settings = exp.settings.model_dump() if hasattr(exp.settings, "model_dump") \
        else dict(exp.settings)
    return StoredExplanation(
        source=redactor.identifier(req.source), doc_id=redactor.identifier(req.doc_id),
        model_name=req.model_name, model_version=req.model_version, target=exp.target,
        target_prob=min(max(float(exp.target_prob), 0.0), 1.0), method=exp.method,
        settings=settings, delta=float(exp.delta),
        words=[WordAttribution(text=w["text"], start=w["start"], end=w["end"],
                               score=max(-1.0, min(1.0, float(w["raw"]) / peak)),
                               raw=float(w["raw"]), redacted=w.get("redacted"))
               for w in words],
        windows=windows, text_field="text", text_sha256=text_sha256(redacted),
        pii_policy=redactor.name, seconds=round(seconds, 4), run_id=req.run_id,
        computed_at=datetime.now(UTC))


