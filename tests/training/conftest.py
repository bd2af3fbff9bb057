"""Fixtures for the training tests: the shared data folder and tiny trained artifacts."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from docstream.training.train import TrainConfig, TrainResult, train

REPO_ROOT = Path(__file__).resolve().parents[2]
AG_LABELS = ["World", "Sports", "Business", "Sci/Tech"]


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """`../shared/data` next to the repository (or $DOCSTREAM_SHARED/data)."""
    base = Path(os.environ.get("DOCSTREAM_SHARED", REPO_ROOT.parent / "shared"))
    path = base / "data"
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is not available")
    return path


@pytest.fixture(scope="session")
def ag_news(shared_data_dir: Path) -> Path:
    """The AG News JSONL file (train sample + test split)."""
    path = shared_data_dir / "ag_news" / "ag_news.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    return path


def tiny_config(data: Path, out: Path, mode: str, **overrides: object) -> TrainConfig:
    """120 AG News train rows (108 train + 12 val), one epoch: seconds on a CPU."""
    settings: dict[str, object] = {
        "data": data,
        "out": out,
        "mode": mode,
        "labels": AG_LABELS,
        "max_rows": 120,
        "epochs": 1,
        "seed": 0,
        "name": f"tiny-{mode}",
        "version": "0.0.1",
        "progress": False,
        "limit_minutes": None,
    }
    settings.update(overrides)
    return TrainConfig.model_validate(settings)


@pytest.fixture(scope="session")
def train_tiny(ag_news: Path, tmp_path_factory: pytest.TempPathFactory
               ) -> Callable[..., TrainResult]:
    """Train a tiny model into a fresh temporary folder: train_tiny(mode, **overrides)."""

    def run(mode: str, **overrides: object) -> TrainResult:
        out = tmp_path_factory.mktemp(f"tiny-{mode}")
        return train(tiny_config(ag_news, out, mode, **overrides), note=lambda _m: None)

    return run


@pytest.fixture(scope="session")
def head_model(train_tiny: Callable[..., TrainResult]) -> TrainResult:
    """A tiny head-mode artifact, shared by the tests of a session (do not modify it)."""
    return train_tiny("head")


@pytest.fixture(scope="session")
def lora_model(train_tiny: Callable[..., TrainResult]) -> TrainResult:
    """A tiny LoRA artifact, shared by the tests of a session (do not modify it)."""
    return train_tiny("lora")
