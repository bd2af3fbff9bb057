"""Rows -> prepared documents through the shared `Preprocessor.prepare` path."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from docstream.model.encoder import BaseEncoder
from docstream.model.tokenizer import load_tokenizer
from docstream.preprocess.config import PreprocessConfig
from docstream.preprocess.preprocessor import Prepared, Preprocessor

from .data import Row

Chunks = list[list[int]]


@dataclass(slots=True)
class PreparedDocs:
    """Documents ready for the model, with their labels.

    Attributes:
        rows: the rows that prepared (rows that failed are only counted in `errors`).
        docs: each document's chunks of token ids.
        labels: label index per document.
        errors: number of rows that failed preparation, per reason code.
    """

    rows: list[Row]
    docs: list[Chunks]
    labels: np.ndarray
    errors: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.docs)

    def n_chunks(self) -> int:
        """Total number of chunks."""
        return sum(len(d) for d in self.docs)

    def token_counts(self) -> list[int]:
        """Model tokens per document, the special tokens of each chunk included."""
        return [sum(len(c) for c in d) for d in self.docs]

    def subset(self, idx: Sequence[int]) -> PreparedDocs:
        """The documents at `idx` (in that order); `errors` stay the whole set's."""
        return PreparedDocs([self.rows[i] for i in idx], [self.docs[i] for i in idx],
                            self.labels[list(idx)], dict(self.errors))

    def chunk_examples(self) -> tuple[list[list[int]], np.ndarray]:
        """Every chunk with its document's label: the training examples."""
        chunks = [c for d in self.docs for c in d]
        labels = np.repeat(self.labels, [len(d) for d in self.docs])
        return chunks, labels


def make_preprocessor(config: PreprocessConfig, base: BaseEncoder | None = None) -> Preprocessor:
    """The preprocessor `docstream run` would build for `config` with `base`'s tokenizer
    (default: the bundled MiniLM's), without entities."""
    return Preprocessor(config, load_tokenizer(base))


def prepare_rows(
    rows: Sequence[Row],
    labels: Sequence[str],
    preprocessor: Preprocessor,
    *,
    batch_size: int = 1024,
) -> PreparedDocs:
    """Prepare rows in batches; rows whose label is not in `labels` must not be passed.

    Args:
        rows: the rows.
        labels: the model's label list (index = class id).
        preprocessor: the shared preprocessor.
        batch_size: rows per `prepare` call.
    """
    index = {lab: i for i, lab in enumerate(labels)}
    kept: list[Row] = []
    docs: list[Chunks] = []
    ys: list[int] = []
    errors: Counter[str] = Counter()
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        prepared = preprocessor.prepare([r.raw_text() for r in batch])
        for row, out in zip(batch, prepared, strict=True):
            if isinstance(out, Prepared):
                kept.append(row)
                docs.append(out.chunks)
                ys.append(index[row.label])
            else:
                errors[out.reason] += 1
    return PreparedDocs(kept, docs, np.asarray(ys, dtype=np.int64), dict(errors))
