"""A base encoder's fast tokenizer, configured for docstream's own chunking."""

from __future__ import annotations

from functools import lru_cache

from tokenizers import Tokenizer

from docstream.preprocess.chunk import SpecialTokens

from .encoder import TOKENIZER_FILE, BaseEncoder, default_base, offline
from .errors import BaseEncoderError


def load_tokenizer(base: BaseEncoder | None = None) -> Tokenizer:
    """`base`'s tokenizer (default: the bundled MiniLM's), with no truncation and no padding.

    Chunking (preprocess.chunk) decides the windows and adds the special tokens itself
    (read from the tokenizer's post-processor: [CLS]/[SEP], <s>/</s>, ...), so the tokenizer
    must return every piece of the text. `tokenizer.json` is read directly; a folder without
    one, or whose post-processor adds no special token, goes through transformers'
    AutoTokenizer (offline), which builds them from `tokenizer_config.json`.

    Raises:
        BaseEncoderError: the folder has no fast tokenizer docstream can use.
    """
    base = base or default_base()
    file = base.path / TOKENIZER_FILE
    stamp = file.stat().st_mtime_ns if file.is_file() else 0  # a changed file is read again
    return _load(str(base.path), base.name, stamp)


@lru_cache(maxsize=8)
def _load(path: str, name: str, _stamp: int) -> Tokenizer:
    tok: Tokenizer | None = None
    file = f"{path}/{TOKENIZER_FILE}"
    try:
        tok = Tokenizer.from_file(file)
    except Exception:  # absent or unreadable: try transformers below
        tok = None
    if tok is None or not _adds_specials(tok):
        tok = _via_transformers(path) or tok
    if tok is None:
        raise BaseEncoderError(f"base encoder {name} ({path}) has no fast tokenizer "
                               f"({TOKENIZER_FILE}); save one there with transformers' "
                               "AutoTokenizer.from_pretrained(...).save_pretrained(...)")
    tok.no_truncation()
    tok.no_padding()
    try:
        SpecialTokens.of(tok)
    except ValueError as e:
        raise BaseEncoderError(f"base encoder {name} ({path}): {e}") from e
    return tok


def _adds_specials(tok: Tokenizer) -> bool:
    try:
        return SpecialTokens.of(tok).n_added > 0
    except ValueError:
        return False


def _via_transformers(path: str) -> Tokenizer | None:
    """The backend tokenizer transformers builds for the folder (None if it cannot)."""
    offline()
    try:
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception:  # any failure: the caller says what is missing
        return None
    backend = getattr(hf, "backend_tokenizer", None)
    if not isinstance(backend, Tokenizer):
        return None
    return Tokenizer.from_str(backend.to_str())  # a copy: ours to configure
