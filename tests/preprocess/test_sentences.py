"""Sentence starts on wordpieces, checked against spaCy's Sentencizer on the project's own
sample news posts and generated multi-sentence posts (tests/news_posts.py)."""

from __future__ import annotations

import json
import random
from importlib import resources

from docstream.model.tokenizer import load_tokenizer
from docstream.preprocess.nlp import load_nlp
from docstream.preprocess.sentences import sentence_starts
from tests.news_posts import LABELS, long_post, news_post

SAMPLE_POSTS = resources.files("docstream") / "samples" / "posts.jsonl"
OPENERS = "\"'“‘(["


def starts_of(text: str) -> list[int]:
    return sentence_starts(text, load_tokenizer().encode(text, add_special_tokens=False))


def pieces(text: str) -> list[str]:
    s = starts_of(text)
    return [text[a:b].strip() for a, b in zip(s, [*s[1:], len(text)], strict=True)]


def test_final_punctuation_quotes_and_brackets() -> None:
    assert pieces('Rates rose. "Stocks fell!" Bonds (mostly) held?! Yes.') == [
        "Rates rose.", '"Stocks fell!"', "Bonds (mostly) held?!", "Yes."]


def test_abbreviations_initials_and_numbers_do_not_split() -> None:
    text = ("Mr. Smith of Acme Corp. met Vladimir V. Putin in Washington, D.C. on Jan. 9 at "
            "3 p.m. and the U.S. dollar rose 3.5 percent. Then it fell.")
    assert pieces(text) == [text[: text.index(" Then")], "Then it fell."]


def test_no_final_no_split_and_first_start_is_zero() -> None:
    assert starts_of("no sentence end here") == [0]
    assert starts_of("End.") == [0]


def first_char(text: str, start: int) -> int:
    """The start moved past whitespace and opening quotes/brackets: spaCy starts a sentence
    at a paragraph break's whitespace and after an opening quote, ours at the quote itself
    and at the next word. Comparing first characters compares where the splits are."""
    while start < len(text) and (text[start].isspace() or text[start] in OPENERS):
        start += 1
    return start


def project_news_texts() -> list[str]:
    """The news posts of the project's own sample file (it also holds deliberately broken
    lines for the dead-letter demo: those are left out)."""
    texts = []
    for line in SAMPLE_POSTS.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            post = json.loads(line)
        except json.JSONDecodeError:
            continue
        text = post.get("text") if isinstance(post, dict) else None
        if isinstance(text, str) and text.strip() and post.get("kind") == "news":
            texts.append(text)
    return texts


def test_agrees_with_spacy_sentencizer_on_news() -> None:
    posts = project_news_texts()
    random.Random(0).shuffle(posts)
    rng = random.Random(0)
    texts = [" ".join(posts[i : i + 4]) for i in range(0, len(posts), 4)]
    texts += [" ".join(news_post(rng, LABELS[i % 4]) for _ in range(4)) for i in range(100)]
    texts += [long_post(rng, LABELS[i % 4], 300) for i in range(20)]  # paragraphs
    assert len(posts) >= 60 and len(texts) > 130
    ours = [{first_char(t, s) for s in starts_of(t)} for t in texts]
    theirs = [{first_char(t, s.start_char) for s in d.sents}
              for t, d in zip(texts, load_nlp().pipe(texts), strict=True)]
    both = sum(len(a & b) for a, b in zip(ours, theirs, strict=True))
    # measured on these ~1,950 sentences: recall and precision 1.00 (the abbreviations,
    # initials, times, decimals and quotes of the sample posts and the generated ones). On raw
    # start offsets they are 0.90 on the sample posts alone, all of it the two conventions
    # first_char() removes; the old AG News figure (0.97/0.95) was also on raw offsets.
    assert both / sum(map(len, theirs)) >= 0.98
    assert both / sum(map(len, ours)) >= 0.98
