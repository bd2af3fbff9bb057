"""The one preprocessing path: clean → spaCy (sentences, tokens, entities) → chunk."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from spacy.language import Language
from tokenizers import Tokenizer

from preprocess.chunk import Chunker
from preprocess.clean import clean_text, compose_text
from preprocess.config import PreprocessConfig
from preprocess.nlp import load_nlp


@dataclass(frozen=True, slots=True)
class RawText:
    """What preprocessing needs of a post."""

    text: str
    title: str | None = None
    social: bool = False


@dataclass(frozen=True, slots=True)
class Prepared:
    """A cleaned text cut into model windows."""

    text: str
    chunks: list[list[int]]
    n_sentences: int
    n_tokens: int
    entities: list[tuple[str, str, int, int]] | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def chunk_lengths(self) -> list[int]:
        return [len(c) for c in self.chunks]


@dataclass(frozen=True, slots=True)
class PrepareError:
    """Why a text could not be prepared; `reason` is a short code."""

    reason: str
    error: str


class Preprocessor:
    """Runs the shared path over batches of texts.

    Example:
        >>> from model.tokenizer import load_tokenizer  # doctest: +SKIP
        >>> pre = Preprocessor(PreprocessConfig(), load_tokenizer())  # doctest: +SKIP
        >>> pre.prepare([RawText("Stocks rose. Bonds fell.")])[0].n_sentences  # doctest: +SKIP
        2
    """

    def __init__(
        self,
        config: PreprocessConfig,
        tokenizer: Tokenizer,
        *,
        entities: bool = False,
        nlp: Language | None = None,
        spacy_batch_size: int = 256,
    ) -> None:
        self.config = config
        self.entities = entities
        self.nlp = nlp if nlp is not None else load_nlp(entities)
        self.chunker = Chunker(tokenizer, config.max_chunk_tokens)
        self.spacy_batch_size = spacy_batch_size

    def clean(self, item: RawText) -> str:
        return clean_text(compose_text(item.text, item.title, self.config), self.config,
                          social=item.social)

    def prepare(self, items: Sequence[RawText]) -> list[Prepared | PrepareError]:
        """Prepare a batch; the output has one entry per input, in order."""
        n = len(items)
        if n == 0:
            return []
        t0 = time.perf_counter()
        cleaned = [self.clean(it) for it in items]
        t1 = time.perf_counter()
        live = [i for i, text in enumerate(cleaned) if text]
        docs = list(self.nlp.pipe((cleaned[i] for i in live), batch_size=self.spacy_batch_size))
        t2 = time.perf_counter()
        encodings = self.chunker.encode_batch([cleaned[i] for i in live])
        out: list[Prepared | PrepareError] = [
            PrepareError("empty_after_cleaning",
                         "text is empty after cleaning (HTML, whitespace and controls removed); "
                         "send a post with words in `text`")
        ] * n
        per_doc = {
            "clean": (t1 - t0) * 1000 / n,
            "spacy": (t2 - t1) * 1000 / max(len(live), 1),
        }
        t3 = time.perf_counter()
        for i, doc, enc in zip(live, docs, encodings, strict=True):
            starts = [s.start_char for s in doc.sents]
            ents = (
                [(e.text, e.label_, e.start_char, e.end_char) for e in doc.ents]
                if self.entities
                else None
            )
            out[i] = Prepared(
                text=cleaned[i],
                chunks=self.chunker.chunk(enc, starts),
                n_sentences=len(starts),
                n_tokens=len(doc),
                entities=ents,
                timings_ms=per_doc,
            )
        # One dict per batch: the per-document cost is the batch's cost shared out.
        per_doc["chunk"] = (time.perf_counter() - t3) * 1000 / max(len(live), 1)
        return out
