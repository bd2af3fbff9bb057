"""The settings of one `docstream run`, validated before anything starts."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: which posts keep their (redacted) text in the store for review: "review" (those flagged
#: needs_review), "all", "off" (none)
StoreText = Literal["review", "all", "off"]


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
