from __future__ import annotations

import pytest

from docstream.model.tokenizer import load_tokenizer
from docstream.preprocess.chunk import Chunker
from docstream.preprocess.config import PreprocessConfig
from docstream.preprocess.preprocessor import Prepared, PrepareError, Preprocessor, RawText

CLS, SEP = 101, 102


@pytest.fixture(scope="module")
def chunker() -> Chunker:
    return Chunker(load_tokenizer(), max_tokens=32)


def sentence_starts(text: str) -> list[int]:
    starts = [0]
    for i, ch in enumerate(text[:-1]):
        if ch == "." and text[i + 1] == " ":
            starts.append(i + 2)
    return starts


def test_short_text_is_one_window(chunker: Chunker) -> None:
    enc = chunker.encode_batch(["The market rallied today."])[0]
    chunks = chunker.chunk(enc, [0])
    assert len(chunks) == 1
    assert chunks[0][0] == CLS and chunks[0][-1] == SEP
    assert chunks[0][1:-1] == enc.ids


def test_long_text_is_cut_at_sentence_boundaries(chunker: Chunker) -> None:
    sentences = [f"Sentence number {i} talks about the weather in town." for i in range(12)]
    text = " ".join(sentences)
    enc = chunker.encode_batch([text])[0]
    chunks = chunker.chunk(enc, sentence_starts(text))
    assert len(chunks) > 1
    assert all(len(c) <= 32 for c in chunks)
    # nothing lost, nothing doubled, order kept
    assert [t for c in chunks for t in c[1:-1]] == enc.ids
    # every window starts at a sentence start
    tok = load_tokenizer()
    for c in chunks:
        assert tok.decode(c[1:-1]).startswith("sentence number")


def test_sentence_longer_than_window_is_split_inside(chunker: Chunker) -> None:
    text = " ".join(["word"] * 100) + ". Short one."
    enc = chunker.encode_batch([text])[0]
    chunks = chunker.chunk(enc, sentence_starts(text))
    assert all(len(c) <= 32 for c in chunks)
    assert [t for c in chunks for t in c[1:-1]] == enc.ids


def test_window_must_leave_room() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        Chunker(load_tokenizer(), max_tokens=4)


def test_preprocessor_counts_tokens_and_flags_empty() -> None:
    pre = Preprocessor(PreprocessConfig(), load_tokenizer())
    out = pre.prepare([RawText("Stocks rose. Bonds fell sharply."), RawText("<br/> "),
                       RawText("Hi @bob #BigWin", social=True)])
    first, empty, social = out
    assert isinstance(first, Prepared)
    # one window: spaCy is skipped, so sentences are not counted
    assert first.n_sentences is None and first.n_tokens == 7
    assert first.chunks == [[101, *load_tokenizer().encode(first.text,
                                                           add_special_tokens=False).ids, 102]]
    assert first.entities is None
    assert isinstance(empty, PrepareError) and empty.reason == "empty_after_cleaning"
    assert isinstance(social, Prepared) and social.text == "Hi @user Big Win"
    assert set(first.timings_ms) == {"clean", "tokenize", "spacy", "chunk"}


def test_preprocessor_splits_long_text_at_sentences() -> None:
    pre = Preprocessor(PreprocessConfig(max_chunk_tokens=32), load_tokenizer())
    text = " ".join(f"Sentence number {i} talks about markets and rates." for i in range(12))
    (out,) = pre.prepare([RawText(text)])
    assert isinstance(out, Prepared)
    assert out.n_sentences == 12 and len(out.chunks) > 1
    assert all(len(c) <= 32 for c in out.chunks)
    assert sum(len(c) - 2 for c in out.chunks) == out.n_tokens


def test_preprocessor_entities_only_when_asked() -> None:
    pre = Preprocessor(PreprocessConfig(), load_tokenizer(), entities=True)
    (out,) = pre.prepare([RawText("Angela Merkel met Emmanuel Macron in Paris on Monday.")])
    assert isinstance(out, Prepared) and out.entities
    labels = {label for _t, label, _s, _e in out.entities}
    assert "GPE" in labels or "PERSON" in labels
