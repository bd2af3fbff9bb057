"""Chunking and sentence starts on every tested tokenizer family (tests/tiny_encoders.py):
special tokens read from the tokenizer, sentence starts the same whatever the subword
scheme (WordPiece "##", SentencePiece "▁", byte-level BPE "Ġ"), windows cut at them."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from docstream.model.encoder import resolve_base
from docstream.model.tokenizer import load_tokenizer
from docstream.preprocess.chunk import Chunker, SpecialTokens
from docstream.preprocess.config import PreprocessConfig
from docstream.preprocess.preprocessor import Prepared, Preprocessor, RawText
from docstream.preprocess.sentences import sentence_starts
from tests.news_posts import LABELS, long_post
from tests.tiny_encoders import FAMILIES

TRICKY = ('Rates rose 3.5 percent in the U.S. on Monday. "Stocks fell!" The dollar held '
          "(mostly) firm?! Mr. Smith of Acme Corp. spoke at 9 a.m. and left.\n\nThen bonds "
          "rallied… Prices: up. Don't panic.")


def family_tokenizer(tiny_encoders: Callable[[str], Path], family: str) -> Tokenizer:
    return load_tokenizer(resolve_base(tiny_encoders(family)))


@pytest.mark.parametrize("family", FAMILIES)
def test_special_tokens_are_the_tokenizers_own(tiny_encoders: Callable[[str], Path],
                                                family: str) -> None:
    from transformers import AutoTokenizer

    folder = tiny_encoders(family)
    hf = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    specials = SpecialTokens.of(family_tokenizer(tiny_encoders, family))
    start = hf.cls_token_id if hf.cls_token_id is not None else hf.bos_token_id
    end = hf.sep_token_id if hf.sep_token_id is not None else hf.eos_token_id
    assert specials == SpecialTokens((start,), (end,))
    assert specials.n_added == hf.num_special_tokens_to_add()
    ids = hf("Stocks rose.")["input_ids"]
    assert specials.wrap(ids[1:-1]) == ids


def test_bundled_tokenizer_keeps_cls_and_sep() -> None:
    assert SpecialTokens.of(load_tokenizer()) == SpecialTokens((101,), (102,))


def texts() -> list[str]:
    rng = random.Random(11)
    return [TRICKY, *(long_post(rng, label, 120) for label in LABELS)]


@pytest.mark.parametrize("family", FAMILIES)
def test_sentence_starts_do_not_depend_on_the_subword_scheme(
        tiny_encoders: Callable[[str], Path], family: str) -> None:
    bundled, tok = load_tokenizer(), family_tokenizer(tiny_encoders, family)
    for text in texts():
        want = sentence_starts(text, bundled.encode(text, add_special_tokens=False))
        assert sentence_starts(text, tok.encode(text, add_special_tokens=False)) == want
    found = sentence_starts(TRICKY, tok.encode(TRICKY, add_special_tokens=False))
    assert [TRICKY[s:].split(" ", 1)[0] for s in found] == [
        "Rates", '"Stocks', "The", "Mr.", "Then", "Don't"]  # "…" ends none (spaCy)


@pytest.mark.parametrize("family", FAMILIES)
def test_long_text_is_cut_at_sentences_into_wrapped_windows(
        tiny_encoders: Callable[[str], Path], family: str) -> None:
    tok = family_tokenizer(tiny_encoders, family)
    window = 48
    pre = Preprocessor(PreprocessConfig(max_chunk_tokens=window), tok)
    text = " ".join(f"Sentence {i} says rates rose." for i in range(40))
    out = pre.prepare([RawText(text)])[0]
    assert isinstance(out, Prepared)
    specials = pre.chunker.special_tokens
    enc = tok.encode(out.text, add_special_tokens=False)
    assert len(out.chunks) > 2 and all(len(c) <= window for c in out.chunks)
    inner = [c[len(specials.prefix):len(c) - len(specials.suffix)] for c in out.chunks]
    assert all(specials.wrap(i) == c for i, c in zip(inner, out.chunks, strict=True))
    assert [t for i in inner for t in i] == enc.ids  # nothing lost, nothing doubled
    starts = set(sentence_starts(out.text, enc))
    first = 0
    for piece in inner[:-1]:
        first += len(piece)
        # the window's first piece holding text holds a sentence's first character; a
        # piece before it may hold only the space before it ("▁", "Ġ")
        u = first
        while out.text[enc.offsets[u][0]:enc.offsets[u][1]].isspace() or \
                enc.offsets[u][0] == enc.offsets[u][1]:
            u += 1
        begin, end = enc.offsets[u]
        assert any(begin <= s < end for s in starts), (family, enc.tokens[first:first + 3])
        if family in ("xlm-roberta", "deberta-v2"):
            assert enc.tokens[first].startswith("▁")  # as the sentence alone would begin
        if family == "roberta":
            assert enc.tokens[first].startswith("Ġ")


def test_chunker_refuses_a_window_without_room(tiny_encoders: Callable[[str], Path]) -> None:
    tok = family_tokenizer(tiny_encoders, "roberta")
    with pytest.raises(ValueError, match="no room"):
        Chunker(tok, max_tokens=8, specials=SpecialTokens((1, 2, 3), (4, 5)))
