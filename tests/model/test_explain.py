"""Word attributions (model/explain.py, attribution.py, charmap.py) on the bundled model.

Small n_steps wherever the attribution values themselves do not matter: these tests are
about words, spans, windows, weights and errors. Faithfulness is tests/model/test_faithfulness.py.
"""

from __future__ import annotations

import math
import random
import re

import numpy as np
import pytest
import torch

from docstream.model.aggregate import aggregate_chunks
from docstream.model.bundled import bundled_model_dir
from docstream.model.charmap import align
from docstream.model.explain import Explainer, ExplainError, Explanation, window_weights
from docstream.model.loader import LoadedModel, load_model
from docstream.model.tokenizer import load_tokenizer
from docstream.preprocess.clean import clean_text
from docstream.preprocess.config import PreprocessConfig
from tests.news_posts import long_post

N_STEPS = 4


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    torch.set_num_threads(2)
    return load_model(bundled_model_dir())


@pytest.fixture(scope="module")
def explainer(loaded: LoadedModel) -> Explainer:
    return Explainer(loaded, n_steps=N_STEPS)


@pytest.fixture(scope="module")
def long_text() -> str:
    return long_post(random.Random(7), "Sports", min_words=260)


def check_spans(text: str, e: Explanation) -> None:
    for w in e.words + [w for win in e.windows for w in win.words]:
        assert w.field == "text"
        assert 0 <= w.start < w.end <= len(text)
        assert text[w.start : w.end] == w.text
        assert -1.0 <= w.score <= 1.0
        assert math.isfinite(w.raw)


# -- character alignment -------------------------------------------------------------------


@pytest.mark.parametrize("social", [False, True])
def test_align_maps_every_cleaned_word_back(social: bool) -> None:
    original = ("<p>Big&nbsp;win  for <b>AT&amp;T</b>!</p> @bob says #WorldCup ﬁnance "
                "\u200bＴｏｋｙｏ   café https://www.bbc.co.uk/news ok")
    config = PreprocessConfig()
    cleaned = clean_text(original, config, social=social)
    m = align(original, cleaned)
    pairs = dict((x.group(), original[slice(*m.span(x.start(), x.end()))])
                 for x in re.finditer(r"\S+", cleaned))
    assert pairs["Big"] == "Big" and pairs["win"] == "win" and pairs["!"] == "!"
    assert pairs["AT&T"] == "AT&amp;T"  # a rewritten run maps to what it replaced
    assert pairs["finance"] == "ﬁnance" and pairs["Tokyo"] == "Ｔｏｋｙｏ"  # not the \u200b
    assert pairs["café"] == "café" and pairs["ok"] == "ok"
    if social:
        assert pairs["@user"] == "@bob"
        assert pairs["World"] == "World" and pairs["Cup"] == "Cup"  # the added space: nowhere
        assert pairs["bbc.co.uk"] == "bbc.co.uk"  # the domain inside the URL it came from
    else:
        assert pairs["#WorldCup"] == "#WorldCup"


def test_align_identity_and_bounds() -> None:
    m = align("same text", "same text")
    assert m.span(5, 9) == (5, 9)
    with pytest.raises(ValueError):
        m.span(3, 3)


# -- words and spans ---------------------------------------------------------------------


def test_wordpieces_sum_into_words_with_spans(explainer: Explainer) -> None:
    text = "Semifinals: naïve Ünïcode café, don't panic — 東京 “quotes” 3.5% ﬁnance emoji!"
    e = explainer.explain(text)
    check_spans(text, e)
    # the tokenizer's words, in order ([CLS]/[SEP] dropped); NFKC made "ﬁ" "fi" for the
    # model, the span still holds the input's own character
    assert [w.text for w in e.words] == [
        "Semifinals", ":", "naïve", "Ünïcode", "café", ",", "don", "'", "t", "panic", "—",
        "東", "京", "“", "quotes", "”", "3", ".", "5", "%", "ﬁnance", "emoji",
        "!"]
    # a word's raw score is the sum of its wordpieces' attributions
    enc = explainer.tokenizer.encode(clean_text(text, explainer.config), add_special_tokens=False)
    window = e.windows[0]
    attr = explainer.ig.attribute([explainer.chunker.chunk(enc, [0])[0]],
                                  [explainer.labels.index(e.target)])[0]
    pieces = [[t + 1 for t, w in enumerate(enc.word_ids) if w == k]
              for k in range(len(window.words))]
    assert max(len(p) for p in pieces) > 1  # "emoji": "em", "##oj", "##i"
    for word, p in zip(window.words, pieces, strict=True):
        assert word.raw == pytest.approx(attr.tokens[p].sum(), abs=1e-5)
    # the flat list is the window's, one window having weight 1; scores scaled by max |raw|
    assert [w.raw for w in e.words] == pytest.approx([w.raw for w in window.words])
    assert max(abs(w.score) for w in e.words) == pytest.approx(1.0)


def test_spans_point_into_the_original_text_after_cleaning(explainer: Explainer) -> None:
    text = "  <p>Shares of <b>AT&amp;T</b> rose&nbsp;4 percent</p>\n\n@analyst_1 says #BigDeal  "
    e = explainer.explain(text, social=True)
    check_spans(text, e)
    by_text = [w.text for w in e.words]
    # "AT", "&", "T" are three words for the tokenizer; "&amp;" became "&"
    assert by_text[by_text.index("AT") : by_text.index("AT") + 3] == ["AT", "&", "T"]
    assert "analyst_1" in by_text  # the model read "user" there: its span is the mention's
    assert "Big" in by_text and "Deal" in by_text


def test_title_words_carry_their_field(explainer: Explainer) -> None:
    title, text = "  Markets <i>rally</i> ", "Stocks rose on Monday."
    e = explainer.explain(text, title=title)
    assert [w.text for w in e.words if w.field == "title"] == ["Markets", "rally"]
    for w in e.words:
        source = title if w.field == "title" else text
        assert source[w.start : w.end] == w.text
    assert [w.text for w in e.words if w.field == "text"] == ["Stocks", "rose", "on", "Monday",
                                                              "."]


def test_same_windows_as_classification(explainer: Explainer, long_text: str) -> None:
    from docstream.preprocess.preprocessor import Preprocessor, RawText

    pre = Preprocessor(explainer.config, explainer.tokenizer)
    for text in ("A short post.", long_text):
        prepared = pre.prepare([RawText(text)])[0]
        assert explainer._prepare(text, None, False).windows == prepared.chunks


def test_windows_of_a_job_with_entities(loaded: LoadedModel, long_text: str) -> None:
    """A job with --entities cuts long texts at spaCy's sentences: `sentence_starts` matches it."""
    from docstream.preprocess.preprocessor import Preprocessor, RawText

    pre = Preprocessor(loaded.manifest.preprocess, load_tokenizer(), entities=True)
    ex = Explainer(loaded, n_steps=2, baseline="[PAD]",
                   sentence_starts=lambda t: [s.start_char for s in pre.nlp(t).sents])
    prepared = pre.prepare([RawText(long_text)])[0]
    assert ex._prepare(long_text, None, False).windows == prepared.chunks


# -- long documents ----------------------------------------------------------------------


def test_long_text_windows_and_weights(explainer: Explainer, long_text: str) -> None:
    e = explainer.explain(long_text)
    check_spans(long_text, e)
    assert len(e.windows) > 1
    weights = np.array([w.weight for w in e.windows])
    assert weights.sum() == pytest.approx(1.0) and (weights > 0).all()
    # the windows' spans follow each other; each holds its own words
    for a, b in zip(e.windows, e.windows[1:], strict=False):
        assert a.end <= b.start
    for win in e.windows:
        assert all(win.start <= w.start and w.end <= win.end for w in win.words)
    # the weights are the aggregator's: the weighted window probabilities are the document's
    probs = explainer.ig.probabilities(explainer._prepare(long_text, None, False).windows)
    lengths = [len(c) for c in explainer._prepare(long_text, None, False).windows]
    doc = aggregate_chunks(probs, lengths, explainer.config.aggregate)
    assert weights == pytest.approx(window_weights(probs, lengths, explainer.config.aggregate))
    assert (weights[:, None] * probs).sum(0) == pytest.approx(doc)
    assert e.target_prob == pytest.approx(doc.max())
    # the document's words are the windows' words times the window weights
    flat = {(w.start, w.end): w.raw for w in e.words}
    summed: dict[tuple[int, int], float] = {}
    for win in e.windows:
        for w in win.words:
            summed[(w.start, w.end)] = summed.get((w.start, w.end), 0.0) + win.weight * w.raw
    assert flat.keys() == summed.keys()
    assert list(flat.values()) == pytest.approx([summed[k] for k in flat])


# -- the method --------------------------------------------------------------------------


def test_delta_is_finite_and_baseline_prob_is_real(explainer: Explainer) -> None:
    e = explainer.explain("The central bank raised interest rates by half a point.")
    assert math.isfinite(e.delta) and e.delta >= 0
    win = e.windows[0]
    assert abs(win.delta) == pytest.approx(e.delta)
    # completeness, the other way round: p(baseline) from the delta equals a real forward pass
    window = explainer._prepare("The central bank raised interest rates by half a point.",
                                None, False).windows[0]
    base = [window[0], *[explainer.tokenizer.token_to_id(e.settings.baseline)] *
            (len(window) - 2), window[-1]]
    p_base = explainer.ig.probabilities([base])[0, explainer.labels.index(e.target)]
    assert win.baseline_prob == pytest.approx(p_base, abs=1e-4)
    assert sum(w.raw for w in win.words) == pytest.approx(win.prob - p_base + win.delta,
                                                          abs=1e-4)


@pytest.mark.parametrize("n_steps", [3, 5])
def test_n_steps_is_what_runs(loaded: LoadedModel, n_steps: int) -> None:
    ex = Explainer(loaded, n_steps=n_steps, baseline="[PAD]")
    rows: list[int] = []
    hook = ex.ig.module.head.register_forward_hook(lambda _m, i, _o: rows.append(i[0].shape[0]))
    try:
        e = ex.explain("Oil prices fell.")
    finally:
        hook.remove()
    assert e.settings.n_steps == n_steps and e.settings.baseline == "[PAD]"
    assert max(rows) == n_steps  # one window, all steps in one pass


def test_auto_baseline_is_the_most_neutral_token(explainer: Explainer) -> None:
    assert explainer.settings.baseline == "of"  # [PAD] reads as Sports 0.98 for this model


def test_target_can_be_given(explainer: Explainer) -> None:
    e = explainer.explain("The striker scored twice.", target="Business")
    assert e.label == "Sports" and e.target == "Business"
    assert e.target_prob == pytest.approx(e.probs["Business"])
    with pytest.raises(ExplainError, match="not a label"):
        explainer.explain("The striker scored twice.", target="Cooking")


@pytest.mark.parametrize("text", ["", "   \n\t ", "<p> </p>", "\u200b\u200b"])
def test_empty_text_is_refused(explainer: Explainer, text: str) -> None:
    with pytest.raises(ExplainError, match="nothing to explain"):
        explainer.explain(text)


def test_explain_many_matches_explain(explainer: Explainer) -> None:
    texts = ["Rebels signed a ceasefire.", "Shares of the bank fell 3 percent on Monday.",
             "The telescope found a new planet."]
    many = explainer.explain_many(texts)
    for text, e in zip(texts, many, strict=True):
        one = explainer.explain(text)
        assert one.target == e.target
        assert [w.raw for w in one.words] == pytest.approx([w.raw for w in e.words], abs=1e-4)
    with pytest.raises(ExplainError, match="text 1"):
        explainer.explain_many(["fine text", "  "])


def test_json_round_trip_and_the_model_is_left_alone(explainer: Explainer,
                                                     loaded: LoadedModel) -> None:
    e = explainer.explain("Apple unveiled a faster chip.")
    assert Explanation.model_validate_json(e.model_dump_json()) == e
    assert e.method == "integrated_gradients"
    assert e.settings.layer == "encoder.embeddings.word_embeddings"
    # the explainer works on its own copy: the loaded module (a Predictor may run it) keeps
    # its parameters, trainable flags and no hooks
    flags = [p.requires_grad for p in loaded.module.parameters()]
    before = loaded.module.head.weight.detach().clone()
    Explainer(loaded, n_steps=2, baseline="[PAD]").explain("Apple unveiled a faster chip.")
    assert explainer.ig.module is not loaded.module
    assert [p.requires_grad for p in loaded.module.parameters()] == flags
    assert torch.equal(loaded.module.head.weight, before)
    assert not loaded.module.encoder.embeddings.word_embeddings._forward_hooks
