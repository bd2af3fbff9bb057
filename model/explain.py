"""Why the model decided: word attributions of a text, per model window and per document.

`Explainer` runs a text through the same preprocessing as classification (clean → tokenise
→ sentence-aligned windows, preprocess/), computes Integrated Gradients per window on an fp32
copy of the artifact's weights (model.attribution), sums wordpieces into words (the
tokenizer's word ids; [CLS]/[SEP] dropped) and maps every word to its character span in the
text it was given (model.charmap: cleaning keeps no offsets, so they are recovered by a
diff of the original and the cleaned text). Words made only of characters preprocessing
added (the '. ' joining a title to the text) have no place in the input and are left out.
Long texts are cut at preprocess.sentences' rules, as the job does without --entities (that
module reads spaCy's punctuation and abbreviation lists lazily; model/ imports no spaCy).

Per window: its words and the weight the chunk aggregator gave it (model.aggregate: token
count × confidence, normalised). The document's flat `words` are the windows' attributions
times those weights: the document's probability is the weighted average of its windows', so
these are the attributions of the document's probability (the weights held fixed).
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Encoding

from docstream.preprocess.chunk import Chunker
from docstream.preprocess.clean import clean_text, compose_text

from .aggregate import aggregate_chunks, confidence
from .attribution import BASELINE_CANDIDATES, IntegratedGradients, choose_baseline_token
from .charmap import CharMap, align
from .errors import ModelError
from .explanation import (
    ExplainSettings,
    Explanation,
    TextField,
    WindowExplanation,
    WordScore,
)
from .loader import LoadedModel, load_model
from .predictor import pick_device
from .tokenizer import load_tokenizer

#: mean |delta| 0.007 of probability at 50 steps, 0.036 at 32 (200 AG News posts, bench/explain.py)
DEFAULT_N_STEPS = 50


class ExplainError(ModelError, ValueError):
    """A text cannot be explained (empty after cleaning, unknown target label)."""


def window_weights(probs: np.ndarray, tokens: Sequence[int], rule: str) -> np.ndarray:
    """The chunk aggregator's weight of each window (model.aggregate), summing to 1."""
    if len(probs) == 1:
        return np.ones(1)
    t = np.asarray(tokens, dtype=np.float64).clip(min=1.0)
    w = t if rule == "mean" else t * (confidence(probs) + 1e-6)
    return w / w.sum()


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without whitespace at its ends (empty, at its end, when it is all space)."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


@dataclass(frozen=True, slots=True)
class _Doc:
    """A text prepared for explaining: what classification would see, plus offsets."""

    original: str  # compose_text(text, title): what was cleaned, what the charmap points into
    title_len: int  # the (stripped) title's length at the head of `original`; 0: none
    title_lead: int  # whitespace compose_text stripped from the title's head
    text_offset: int  # where `text` starts in `original` (after the title and its joiner)
    cleaned: str
    encoding: Encoding
    windows: list[list[int]]
    charmap: CharMap

    def place(self, start: int, end: int) -> tuple[TextField, int, int] | None:
        """A cleaned span as (field, start, end) of the input; None when it holds only
        characters preprocessing added (the '. ' joining a title to the text)."""
        a, b = self.charmap.span(start, end)
        if b <= a:
            return None
        if b > self.text_offset:
            return "text", max(a - self.text_offset, 0), b - self.text_offset
        if a < self.title_len:
            return "title", a + self.title_lead, min(b, self.title_len) + self.title_lead
        return None

    def text_span(self, start: int, end: int) -> tuple[int, int]:
        """A cleaned span as a span of `text` (clipped: a title's part is left out)."""
        a, b = self.charmap.span(start, end)
        return max(a - self.text_offset, 0), max(b - self.text_offset, 0)

    def slice(self, field: TextField, start: int, end: int) -> str:
        if field == "text":
            return self.original[self.text_offset + start : self.text_offset + end]
        return self.original[start - self.title_lead : end - self.title_lead]


class Explainer:
    """Integrated-Gradients explanations of an artifact's predictions.

    Example:
        >>> ex = Explainer(bundled_model_dir(), n_steps=16)  # doctest: +SKIP
        >>> e = ex.explain("The striker scored twice as United beat City 2-0.")  # doctest: +SKIP
        >>> e.target, max(e.words, key=lambda w: w.raw).text  # doctest: +SKIP
        ('Sports', 'striker')

    Args:
        model: a loaded artifact (its module is copied, never changed: a Predictor may share
            it) or an artifact directory.
        n_steps: IG steps per window (cost grows linearly; see DEFAULT_N_STEPS).
        device: "cpu", "cuda", ...; None picks CUDA when available. Always fp32.
        baseline: the baseline token, or "auto" (the most neutral for this model; see
            model.attribution).
        max_tokens_per_batch: tokens per forward/backward pass (None: 4096 CPU, 32768 CUDA).
        sentence_starts: where sentences begin in a cleaned text, for cutting long texts;
            None: preprocess.sentences' rules, as the job without --entities does. A job
            with --entities (or `sentences: spacy`) cuts at spaCy's sentences: pass
            `lambda t: [s.start_char for s in nlp(t).sents]` to match it.
        threads: torch CPU threads (None: $DOCSTREAM_TORCH_THREADS, else torch's own).

    Holds its own fp32 copy of the module (~90 MB for MiniLM-L6). Not thread-safe: Captum
    hooks the copy's embedding layer during each call; use one Explainer per thread.
    """

    def __init__(self, model: LoadedModel | str | Path, *, n_steps: int = DEFAULT_N_STEPS,
                 device: str | torch.device | None = None, baseline: str = "auto",
                 max_tokens_per_batch: int | None = None,
                 sentence_starts: Callable[[str], Sequence[int]] | None = None,
                 threads: int | None = None) -> None:
        loaded = model if isinstance(model, LoadedModel) else load_model(model)
        manifest = loaded.manifest
        self.manifest = manifest
        self.labels = list(manifest.labels)
        self.config = manifest.preprocess
        if self.config.sentences == "spacy" and sentence_starts is None:
            raise ExplainError("this model cuts long texts at spaCy's sentences "
                               "(preprocess.sentences: spacy): pass sentence_starts")
        self._sentence_starts = sentence_starts
        self.device = pick_device(device)
        want = threads or int(os.environ.get("DOCSTREAM_TORCH_THREADS", "0")) or None
        if want and self.device.type == "cpu":
            torch.set_num_threads(want)
        self.tokenizer = load_tokenizer(loaded.base)
        self.chunker = Chunker(self.tokenizer, self.config.max_chunk_tokens)
        specials = self.chunker.special_tokens
        if len(specials.prefix) != 1 or len(specials.suffix) != 1:
            raise ExplainError(f"explanations need one special token before and one after a "
                               f"window ([CLS] … [SEP] or <s> … </s>); {loaded.base.name}'s "
                               f"tokenizer adds {specials}")
        module = copy.deepcopy(loaded.module).float().to(self.device).eval()
        cls_id, sep_id = specials.prefix[0], specials.suffix[0]
        if baseline == "auto":
            ids = {t: self.tokenizer.token_to_id(t) for t in BASELINE_CANDIDATES}
            baseline, _ = choose_baseline_token(
                module, manifest.temperature, {t: i for t, i in ids.items() if i is not None},
                cls_id=cls_id, sep_id=sep_id, max_len=self.config.max_chunk_tokens,
                device=self.device)
        baseline_id = self.tokenizer.token_to_id(baseline)
        if baseline_id is None:
            raise ExplainError(f"baseline token {baseline!r} is not in the tokenizer's vocabulary")
        budget = max_tokens_per_batch or (32768 if self.device.type == "cuda" else 4096)
        self.ig = IntegratedGradients(module, temperature=manifest.temperature,
                                      baseline_id=baseline_id, n_steps=n_steps,
                                      device=self.device, max_tokens=budget)
        self.settings = ExplainSettings(n_steps=n_steps, baseline=baseline)

    @property
    def model_ref(self) -> str:
        return f"{self.manifest.name}@{self.manifest.version}"

    # -- preprocessing: the same steps as preprocess.Preprocessor.prepare -----------------

    def _prepare(self, text: str, title: str | None, social: bool) -> _Doc:
        if not isinstance(text, str):
            raise ExplainError(f"text must be a str, not {type(text).__name__}")
        original = compose_text(text, title, self.config)
        cleaned = clean_text(original, self.config, social=social)
        enc = self.chunker.encode_batch([cleaned])[0] if cleaned else None
        if enc is None or not enc.ids:
            raise ExplainError("nothing to explain: the text is empty after cleaning (HTML, "
                               "whitespace and controls removed) or holds no word the model "
                               "can read")
        if self.chunker.fits(enc):
            starts: Sequence[int] = [0]
        elif self._sentence_starts is not None:
            starts = self._sentence_starts(cleaned)
        else:
            from docstream.preprocess.sentences import sentence_starts

            starts = sentence_starts(cleaned, enc)
        with_title = title is not None and len(original) > len(text)  # compose_text used it
        title_len = len(title.strip()) if with_title and title is not None else 0
        lead = len(title) - len(title.lstrip()) if with_title and title is not None else 0
        return _Doc(original, title_len, lead, len(original) - len(text), cleaned, enc,
                    self.chunker.chunk(enc, starts, cleaned), align(original, cleaned))

    def _prepare_all(self, texts: Sequence[str], titles: Sequence[str | None] | None,
                     social: bool | Sequence[bool]) -> list[_Doc]:
        titles = list(titles) if titles is not None else [None] * len(texts)
        socials = [social] * len(texts) if isinstance(social, bool) else list(social)
        if not len(titles) == len(socials) == len(texts):
            raise ValueError("texts, titles and social must have the same length")
        docs = []
        for i, (text, title, soc) in enumerate(zip(texts, titles, socials, strict=True)):
            try:
                docs.append(self._prepare(text, title, soc))
            except ExplainError as e:
                raise ExplainError(f"text {i}: {e}" if len(texts) > 1 else str(e)) from e
        return docs

    def probabilities(self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None,
                      social: bool | Sequence[bool] = False) -> np.ndarray:
        """Calibrated document probabilities on the fp32 copy (one row per text)."""
        docs = self._prepare_all(texts, titles, social)
        return np.array([row for row, _w, _p in self._doc_probs(docs)])

    def _doc_probs(self, docs: list[_Doc]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(document probabilities, window weights, window probabilities) of each doc."""
        flat = [w for d in docs for w in d.windows]
        probs = self.ig.probabilities(flat)
        out, pos = [], 0
        rule = self.config.aggregate
        for d in docs:
            p = probs[pos : pos + len(d.windows)]
            lengths = [len(w) for w in d.windows]
            out.append((aggregate_chunks(p, lengths, rule), window_weights(p, lengths, rule), p))
            pos += len(d.windows)
        return out

    # -- explanations ---------------------------------------------------------------------

    def explain(self, text: str, target: str | None = None, *, title: str | None = None,
                social: bool = False) -> Explanation:
        """Why the model gives `target` (None: its own prediction) to `text`.

        `title` and `social` as in classification (preprocess.RawText). Spans point into
        `text` (words of the title: into `title`, with field "title").

        Raises:
            ExplainError: the text is empty after cleaning, or `target` is not a label.
        """
        return self.explain_many([text], [target], titles=[title], social=social)[0]

    def explain_many(self, texts: Sequence[str], targets: Sequence[str | None] | None = None,
                     *, titles: Sequence[str | None] | None = None,
                     social: bool | Sequence[bool] = False) -> list[Explanation]:
        """`explain` for many texts, their windows batched together."""
        t0 = time.perf_counter()
        targets = list(targets) if targets is not None else [None] * len(texts)
        if len(targets) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(targets)} targets")
        for t in targets:
            if t is not None and t not in self.labels:
                raise ExplainError(f"target {t!r} is not a label of {self.model_ref}; "
                                   f"use one of {self.labels}")
        docs = self._prepare_all(texts, titles, social)
        doc_probs = self._doc_probs(docs)
        target_ids = [self.labels.index(t) if t is not None else int(row.argmax())
                      for t, (row, _w, _p) in zip(targets, doc_probs, strict=True)]
        window_targets = [c for d, c in zip(docs, target_ids, strict=True) for _ in d.windows]
        window_probs = np.concatenate([p for _r, _w, p in doc_probs])
        attrs = self.ig.attribute([w for d in docs for w in d.windows], window_targets,
                                  window_probs)
        seconds = (time.perf_counter() - t0) / max(len(texts), 1)
        out, pos = [], 0
        for d, c, (row, weights, _p) in zip(docs, target_ids, doc_probs, strict=True):
            doc_attrs = attrs[pos : pos + len(d.windows)]
            pos += len(d.windows)
            out.append(self._build(d, c, row, weights, doc_attrs, seconds))
        return out

    def _build(self, d: _Doc, target: int, row: np.ndarray, weights: np.ndarray,
               attrs: list, seconds: float) -> Explanation:
        word_ids = d.encoding.word_ids
        offsets = d.encoding.offsets
        totals: dict[int, float] = {}  # document-level raw score per word id
        spans: dict[int, tuple[int, int]] = {}  # cleaned span per word id
        windows = []
        first = 0  # encoding index of the window's first token (windows are contiguous)
        for k, (win, attr) in enumerate(zip(d.windows, attrs, strict=True)):
            n = len(win) - 2
            per_word: dict[int, float] = {}
            wspan: dict[int, tuple[int, int]] = {}
            for t in range(first, first + n):
                w = word_ids[t] if word_ids[t] is not None else -1 - t
                a, b = _trim(d.cleaned, *offsets[t])  # SentencePiece's "▁" spans the space
                per_word[w] = per_word.get(w, 0.0) + float(attr.tokens[t - first + 1])
                s = wspan.get(w)
                wspan[w] = (a, b) if s is None else (min(s[0], a), max(s[1], b))
            for w, v in per_word.items():
                totals[w] = totals.get(w, 0.0) + float(weights[k]) * v
                s, o = spans.get(w), wspan[w]
                spans[w] = o if s is None else (min(s[0], o[0]), max(s[1], o[1]))
            start, end = d.text_span(offsets[first][0], offsets[first + n - 1][1])
            windows.append(WindowExplanation(
                index=k, start=start, end=end, weight=float(weights[k]), prob=attr.prob,
                baseline_prob=attr.baseline_prob, delta=attr.delta,
                words=self._words(d, per_word, wspan)))
            first += n
        return Explanation(
            model=self.model_ref, target=self.labels[target], target_prob=float(row[target]),
            label=self.labels[int(row.argmax())],
            probs={lab: float(p) for lab, p in zip(self.labels, row, strict=True)},
            settings=self.settings, delta=max(abs(a.delta) for a in attrs),
            windows=windows, words=self._words(d, totals, spans), seconds=seconds)

    @staticmethod
    def _words(d: _Doc, raw: dict[int, float], spans: dict[int, tuple[int, int]]
               ) -> list[WordScore]:
        placed = []
        for w, value in raw.items():
            a, b = spans[w]
            where = d.place(a, b) if b > a else None
            if where is not None:
                placed.append((where, value))
        top = max((abs(v) for _w, v in placed), default=0.0) or 1.0
        placed.sort(key=lambda x: (x[0][0] != "title", x[0][1]))
        return [WordScore(text=d.slice(f, s, e), start=s, end=e, score=v / top, raw=v, field=f)
                for (f, s, e), v in placed]

