"""The settings of one `docstream run`, validated before anything starts."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: which posts keep their (redacted) text in the store for review: "review" (those flagged
#: needs_review), "all", "off" (none)
StoreText = Literal["review", "all", "off"]
Explain = Literal["review", "all", "off"]


class RunSettings(BaseModel):
    model_config = ConfigDict(frozen=True, protected_namespaces=())

    sources: list[str] = Field(min_length=1)
    sink: str
    model_dir: str
    entities: bool = False
    runner: str = "DirectRunner"
    beam_args: list[str] = Field(default_factory=list)
    run_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:16], max_length=64)
    device: str | None = None
    precision: Literal["auto", "fp32", "bf16", "fp16", "int8"] = "auto"
    review_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    lines_per_element: int = Field(default=512, ge=1)
    progress: bool = True
    #: batch job: how long a store outage is waited out before the job stops (seconds)
    store_wait_s: float = Field(default=60.0, ge=0.0)
    #: redaction before storage: "default" (privacy/policies/default.json), another packaged
    #: policy's name, a policy JSON file, or "off" (privacy.redact)
    pii_policy: str = Field(default="default", min_length=1)
    #: which posts keep their (redacted) text in the store for review (StoreText)
    store_text: StoreText = "review"
    #: which results get token attributions in a branch after inference (pipelines.
    #: explain_branch): the flagged ones, all, none; only those whose text is stored
    explain: Explain = "review"
    #: Integrated Gradients steps per explanation (0: the model's default)
    explain_steps: int = Field(default=0, ge=0, le=1000)
    #: explanations waiting at most; more are dropped (counted) rather than slow the job
    explain_backlog: int = Field(default=256, ge=1, le=100_000)

    @model_validator(mode="after")
    def _explain_needs_text(self) -> RunSettings:
        if self.explain == "all" and self.store_text != "all":
            raise ValueError("--explain all needs --store-text all: explanations are shown "
                             "over the stored (redacted) text")
        return self
