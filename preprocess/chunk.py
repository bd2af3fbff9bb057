"""Sentence-aligned chunking of a cleaned text into model windows of token ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tokenizers import Encoding, Tokenizer


@dataclass(frozen=True, slots=True)
class Chunker:
    """Cuts texts into windows of at most `max_tokens` ids, [CLS] and [SEP] included.

    A text that fits is one window. A longer one is cut at sentence boundaries, packing whole
    sentences greedily; a single sentence longer than a window is cut inside at the window
    size. No token is dropped: every part of the text lands in exactly one chunk.
    """

    tokenizer: Tokenizer
    max_tokens: int = 128

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise ValueError(f"max_tokens must be >= 8, got {self.max_tokens}")

    @property
    def _specials(self) -> tuple[int, int]:
        cls_id = self.tokenizer.token_to_id("[CLS]")
        sep_id = self.tokenizer.token_to_id("[SEP]")
        if cls_id is None or sep_id is None:
            raise ValueError("tokenizer has no [CLS]/[SEP] tokens; is it a BERT wordpiece one?")
        return cls_id, sep_id

    def fits(self, encoding: Encoding) -> bool:
        """Whether the text is one window (no sentence boundaries needed to cut it)."""
        return len(encoding.ids) <= self.max_tokens - 2

    def encode_batch(self, texts: Sequence[str]) -> list[Encoding]:
        return self.tokenizer.encode_batch(list(texts), add_special_tokens=False)

    def chunk(self, encoding: Encoding, sentence_starts: Sequence[int]) -> list[list[int]]:
        """Windows of ids for one text.

        Args:
            encoding: the text's encoding without special tokens (from `encode_batch`).
            sentence_starts: character offsets where sentences begin (the first is 0).
        """
        cls_id, sep_id = self._specials
        ids = encoding.ids
        room = self.max_tokens - 2
        if len(ids) <= room:
            return [[cls_id, *ids, sep_id]]
        # Token index where each sentence begins, from the tokens' character offsets.
        starts = sorted(set(sentence_starts))
        cut_points: list[int] = []
        s = 0
        for t, (begin, _end) in enumerate(encoding.offsets):
            while s < len(starts) and starts[s] <= begin:
                if t > 0 and (not cut_points or cut_points[-1] != t):
                    cut_points.append(t)
                s += 1
        bounds = [0, *cut_points, len(ids)]
        sentences = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
        chunks: list[list[int]] = []
        current: list[int] = []
        for a, b in sentences:
            piece = ids[a:b]
            if len(current) + len(piece) <= room:
                current.extend(piece)
                continue
            if current:
                chunks.append(current)
                current = []
            while len(piece) > room:
                chunks.append(list(piece[:room]))
                piece = piece[room:]
            current = list(piece)
        if current:
            chunks.append(current)
        return [[cls_id, *c, sep_id] for c in chunks]
