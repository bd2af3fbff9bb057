"""The result of explaining a text (model.explain.Explainer): pydantic models, JSON-ready.

An `Explanation` holds the target label and its probability, the method and its settings,
the convergence delta, the model windows (span, aggregator weight, words) and the words of
the whole text. Every word has a character span into the text that was given to the
explainer (`field` "text"), or into its title (`field` "title"), never into the cleaned text
the model read.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .attribution import LAYER

METHOD = "integrated_gradients"
TextField = Literal["text", "title"]


class WordScore(BaseModel):
    """One word: its span [start, end) in `field` of the input, and its attribution.

    `text` is the input's own characters there (what the model read may differ: cleaning
    normalises unicode and rewrites mentions; a rewritten word spans what it replaced).
    `raw` is in probability units: the word's share of p(target) - p(baseline) in its window
    (a window's words), times the window's weight (the document's words). `score` is `raw`
    divided by the largest |raw| of its list: in [-1, 1], > 0 supports the target.
    """

    model_config = ConfigDict(frozen=True)

    text: str
    start: int
    end: int
    score: float
    raw: float
    field: TextField = "text"


class WindowExplanation(BaseModel):
    """One model window: its span in the text (`start`, `end`; the title, when one was
    given, is at the head of the first window), its aggregator weight, and its words."""

    model_config = ConfigDict(frozen=True)

    index: int
    start: int
    end: int
    weight: float
    prob: float = Field(description="the target's calibrated probability for this window")
    baseline_prob: float = Field(description="... and for the baseline window")
    delta: float = Field(description="IG convergence delta of the window (probability units)")
    words: list[WordScore]


class ExplainSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    n_steps: int
    baseline: str = Field(description="[CLS] + this token in every position + [SEP]")
    layer: str = LAYER
    output: str = "calibrated_probability"
    precision: str = "fp32"


class Explanation(BaseModel):
    """Why the model gave `target` to a text. JSON: `model_dump(mode="json")`."""

    model_config = ConfigDict(frozen=True)

    model: str = Field(description="NAME@VERSION of the artifact")
    target: str
    target_prob: float = Field(description="calibrated probability of `target` (fp32 copy)")
    label: str = Field(description="the predicted label (fp32 copy)")
    probs: dict[str, float]
    method: str = METHOD
    settings: ExplainSettings
    delta: float = Field(description="max |convergence delta| over the windows")
    windows: list[WindowExplanation]
    words: list[WordScore]
    seconds: float = Field(description="compute time of this text (a batch's, shared out)")
