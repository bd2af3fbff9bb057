"""Sentence-aligned chunking of a cleaned text into model windows of token ids.

Nothing here is tied to one tokenizer family. The special tokens come from the tokenizer's
own post-processor (`SpecialTokens.of`): [CLS] … [SEP] for BERT, DistilBERT and DeBERTa-v2,
<s> … </s> for RoBERTa, XLM-R and MPNet. Sentence starts are character offsets, mapped onto
tokens through the tokens' offsets, so WordPiece ("##"), SentencePiece ("▁") and byte-level
BPE ("Ġ") pieces are cut the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import InitVar, dataclass, field

from tokenizers import Encoding, Tokenizer

#: texts encoded to find what the post-processor adds around them (the first that yields
#: at least one token is used)
_PROBES = ("a", "the", "A", "0", "x", ".")


@dataclass(frozen=True, slots=True)
class SpecialTokens:
    """The ids a tokenizer puts around one sequence, e.g. ([CLS],) and ([SEP],).

    Example:
        >>> SpecialTokens((101,), (102,)).wrap([7, 8])
        [101, 7, 8, 102]
    """

    prefix: tuple[int, ...] = ()
    suffix: tuple[int, ...] = ()

    @property
    def n_added(self) -> int:
        """How many ids one sequence gains (transformers' `num_special_tokens_to_add()`)."""
        return len(self.prefix) + len(self.suffix)

    def wrap(self, ids: Sequence[int]) -> list[int]:
        return [*self.prefix, *ids, *self.suffix]

    @classmethod
    def of(cls, tokenizer: Tokenizer) -> SpecialTokens:
        """What `tokenizer`'s post-processor adds to a single sequence.

        A probe text is encoded with and without special tokens; what surrounds the plain
        ids in the first encoding is the prefix and the suffix. A tokenizer without a
        post-processor adds nothing (empty prefix and suffix).

        Raises:
            ValueError: the post-processor changes the ids themselves, not only around them.
        """
        for probe in _PROBES:
            plain = _unpadded(tokenizer.encode(probe, add_special_tokens=False))
            if not plain:
                continue
            full = _unpadded(tokenizer.encode(probe, add_special_tokens=True))
            n = len(plain)
            for k in range(len(full) - n + 1):
                if full[k : k + n] == plain:
                    return cls(tuple(full[:k]), tuple(full[k + n :]))
            raise ValueError(f"the tokenizer's post-processor rewrites {probe!r} ({plain} -> "
                             f"{full}) instead of adding special tokens around it")
        raise ValueError(f"the tokenizer yields no token for any of {list(_PROBES)}")


def _unpadded(encoding: Encoding) -> list[int]:
    """The ids of an encoding without padding (a tokenizer may still have padding on)."""
    return [i for i, m in zip(encoding.ids, encoding.attention_mask, strict=True) if m]


@dataclass(frozen=True, slots=True)
class Chunker:
    """Cuts texts into windows of at most `max_tokens` ids, special tokens included.

    A text that fits is one window. A longer one is cut at sentence boundaries, packing whole
    sentences greedily; a single sentence longer than a window is cut inside at the window
    size. No token is dropped: every part of the text lands in exactly one chunk. Every
    window is wrapped in the tokenizer's special tokens (`specials`; default: read from the
    tokenizer with `SpecialTokens.of`).
    """

    tokenizer: Tokenizer
    max_tokens: int = 128
    specials: InitVar[SpecialTokens | None] = None
    special_tokens: SpecialTokens = field(init=False)

    def __post_init__(self, specials: SpecialTokens | None) -> None:
        if self.max_tokens < 8:
            raise ValueError(f"max_tokens must be >= 8, got {self.max_tokens}")
        found = specials if specials is not None else SpecialTokens.of(self.tokenizer)
        if self.max_tokens - found.n_added < 4:
            raise ValueError(f"max_tokens {self.max_tokens} leaves no room next to the "
                             f"tokenizer's {found.n_added} special tokens")
        object.__setattr__(self, "special_tokens", found)

    @property
    def room(self) -> int:
        """Text tokens per window (the window less the special tokens)."""
        return self.max_tokens - self.special_tokens.n_added

    def fits(self, encoding: Encoding) -> bool:
        """Whether the text is one window (no sentence boundaries needed to cut it)."""
        return len(encoding.ids) <= self.room

    def encode_batch(self, texts: Sequence[str]) -> list[Encoding]:
        return self.tokenizer.encode_batch(list(texts), add_special_tokens=False)

    def chunk(self, encoding: Encoding, sentence_starts: Sequence[int],
              text: str | None = None) -> list[list[int]]:
        """Windows of ids for one text.

        Args:
            encoding: the text's encoding without special tokens (from `encode_batch`).
            sentence_starts: character offsets where sentences begin (the first is 0).
            text: the encoded text; with it, a piece that is only the space before a
                sentence (SentencePiece's "▁") starts that sentence's window.
        """
        wrap = self.special_tokens.wrap
        ids = encoding.ids
        room = self.room
        if len(ids) <= room:
            return [wrap(ids)]
        bounds = [0, *cut_points(encoding, sentence_starts, text), len(ids)]
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
        return [wrap(c) for c in chunks]


def cut_points(encoding: Encoding, sentence_starts: Sequence[int],
               text: str | None = None) -> list[int]:
    """Token index where each sentence begins (none at 0), from the tokens' offsets.

    A sentence begins at the token that holds its first character: the first token that
    ends after it. That is the word's own token for WordPiece and for byte-level BPE (whose
    offsets leave the space out), and a "▁Word" piece for SentencePiece (whose offsets take
    in the space before the word). Pieces just before it that hold no text (byte-level BPE's
    lone "Ġ", whose offsets are empty) or, given `text`, only whitespace (a lone "▁") begin
    the sentence with it, as they would in an encoding of the sentence alone.
    """
    offsets = encoding.offsets
    n = len(offsets)
    cuts: list[int] = []
    t = 0
    for start in sorted(set(sentence_starts)):
        while t < n and offsets[t][1] <= start:
            t += 1
        if t >= n:
            break
        cut = t
        floor = cuts[-1] if cuts else 0
        while cut - 1 > floor and _blank(offsets[cut - 1], text):
            cut -= 1
        if cut > 0 and cut > floor:
            cuts.append(cut)
    return cuts


def _blank(offset: tuple[int, int], text: str | None) -> bool:
    begin, end = offset
    return end <= begin or (text is not None and text[begin:end].isspace())
