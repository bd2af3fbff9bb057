"""Preprocessing settings. They are saved inside every model artifact, so evaluation and
`run` see a model's texts exactly as its training did."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PreprocessConfig(BaseModel):
    """How a post's text is cleaned and cut into model windows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal["clean.v1"] = "clean.v1"
    unicode_form: Literal["NFC", "NFKC"] = "NFKC"
    strip_html: bool = True
    include_title: bool = Field(
        default=True, description="Prefix the title to the text, joined by '. '."
    )
    urls: Literal["domain", "token", "keep"] = Field(
        default="domain", description="Social posts: replace a URL by its domain, by 'URL', or keep."
    )
    mentions: Literal["token", "keep"] = Field(
        default="token", description="Social posts: '@someone' becomes '@user' (also privacy)."
    )
    hashtags: Literal["split", "strip", "keep"] = Field(
        default="split", description="Social posts: '#WorldCup' becomes 'World Cup'."
    )
    max_chunk_tokens: int = Field(
        default=128, ge=16, le=512, description="Model window in the base's tokens, special tokens included."
    )
    aggregate: Literal["confidence_weighted", "mean"] = "confidence_weighted"
    sentences: Literal["rules", "spacy"] = Field(
        default="rules",
        description="Where long texts are cut: spaCy's Sentencizer rule applied to the model's "
        "tokens (rules, ~20x cheaper), or spaCy's tokenizer + Sentencizer (spacy).",
    )
