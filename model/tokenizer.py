"""The base encoder's fast tokenizer, configured for docstream's own chunking."""

from __future__ import annotations

from functools import lru_cache

from tokenizers import Tokenizer

from .encoder import encoder_dir


@lru_cache(maxsize=1)
def load_tokenizer() -> Tokenizer:
    """A `tokenizers.Tokenizer` with no truncation and no padding.

    Chunking (preprocess.chunk) decides the windows and adds [CLS]/[SEP] itself, so the
    tokenizer must return every wordpiece of the text.
    """
    tok = Tokenizer.from_file(str(encoder_dir() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok
