"""The one preprocessing path: clean → tokenise → sentences (long texts) / spaCy (entities) → chunk."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from spacy.language import Language
from tokenizers import Tokenizer

from .chunk import Chunker
from .clean import clean_text, compose_text
from .config import PreprocessConfig
from .nlp import load_nlp
from .sentences import sentence_starts


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
    #: sentences found (spaCy or preprocess.sentences); None when the text fit one window
    n_sentences: int | None
    #: model tokens in the cleaned text, before windowing (special tokens not counted)
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
        >>> from docstream.model.tokenizer import load_tokenizer  # doctest: +SKIP
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
        """Prepare a batch; the output has one entry per input, in order.

        Every text is tokenised once. A text that fits one model window is sent whole (most
        social posts and news snippets). A longer one is cut at sentence boundaries, found
        on its model tokens (preprocess.sentences) or, with `sentences="spacy"`, by spaCy.
        spaCy runs on every text only with `entities` (NER). That keeps preprocessing cheap
        next to the model.
        """
        n = len(items)
        if n == 0:
            return []
        t0 = time.perf_counter()
        cleaned = [self.clean(it) for it in items]
        t1 = time.perf_counter()
        live = [i for i, text in enumerate(cleaned) if text]
        encodings = self.chunker.encode_batch([cleaned[i] for i in live])
        t2 = time.perf_counter()
        by_spacy = self.config.sentences == "spacy"
        long = [not self.chunker.fits(enc) for enc in encodings]
        need_nlp = [k for k in range(len(encodings))
                    if self.entities or (by_spacy and long[k])]
        docs = dict(zip(need_nlp, self.nlp.pipe((cleaned[live[k]] for k in need_nlp),
                                                batch_size=self.spacy_batch_size), strict=True))
        t3 = time.perf_counter()
        out: list[Prepared | PrepareError] = [
            PrepareError("empty_after_cleaning",
                         "text is empty after cleaning (HTML, whitespace and controls removed) "
                         "or holds nothing the model can read (no token); send a post with "
                         "words in `text`")
        ] * n
        # One dict per batch: the per-document cost is the batch's cost shared out.
        per_doc = {
            "clean": (t1 - t0) * 1000 / n,
            "tokenize": (t2 - t1) * 1000 / max(len(live), 1),
            "spacy": (t3 - t2) * 1000 / max(len(live), 1),
        }
        for k, (i, enc) in enumerate(zip(live, encodings, strict=True)):
            if not enc.ids:  # e.g. only combining marks: nothing to classify
                continue
            doc = docs.get(k)
            if doc is not None:
                starts = [s.start_char for s in doc.sents]
            elif long[k]:
                starts = sentence_starts(cleaned[i], enc)
            else:
                starts = [0]
            ents = (
                [(e.text, e.label_, e.start_char, e.end_char) for e in doc.ents]
                if self.entities and doc is not None
                else None
            )
            out[i] = Prepared(
                text=cleaned[i],
                chunks=self.chunker.chunk(enc, starts, cleaned[i]),
                n_sentences=len(starts) if (doc is not None or long[k]) else None,
                n_tokens=len(enc.ids),
                entities=ents,
                timings_ms=per_doc,
            )
        per_doc["chunk"] = (time.perf_counter() - t3) * 1000 / max(len(live), 1)
        return out
