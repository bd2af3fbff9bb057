"""The bundled default model: a news-topic classifier (World / Sports / Business / Sci/Tech)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUNDLED_NAME = "news-topic"


def bundled_model_dir() -> Path:
    return Path(str(resources.files("docstream.model") / "bundled" / BUNDLED_NAME))
