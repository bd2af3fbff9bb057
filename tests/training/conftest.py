"""Fixtures for the training tests: tiny trained artifacts on the generated news data
(`news_data` in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from docstream.training.train import TrainConfig, TrainResult, train
from tests.news_posts import LABELS as NEWS_LABELS


def tiny_config(data: Path, out: Path, mode: str, **overrides: object) -> TrainConfig:
    """120 generated train rows (108 train + 12 val), one epoch: seconds on a CPU."""
    settings: dict[str, object] = {
        "data": data,
        "out": out,
        "mode": mode,
        "labels": NEWS_LABELS,
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
def train_tiny(news_data: Path, tmp_path_factory: pytest.TempPathFactory
               ) -> Callable[..., TrainResult]:
    """Train a tiny model into a fresh temporary folder: train_tiny(mode, **overrides)."""

    def run(mode: str, **overrides: object) -> TrainResult:
        out = tmp_path_factory.mktemp(f"tiny-{mode}")
        return train(tiny_config(news_data, out, mode, **overrides), note=lambda _m: None)

    return run


@pytest.fixture(scope="session")
def head_model(train_tiny: Callable[..., TrainResult]) -> TrainResult:
    """A tiny head-mode artifact, shared by the tests of a session (do not modify it)."""
    return train_tiny("head")


@pytest.fixture(scope="session")
def lora_model(train_tiny: Callable[..., TrainResult]) -> TrainResult:
    """A tiny LoRA artifact, shared by the tests of a session (do not modify it)."""
    return train_tiny("lora")
