"""A trained artifact that was tampered with fails to load with a clear ArtifactError."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from docstream.model.errors import ArtifactError
from docstream.model.loader import load_model
from docstream.training.train import TrainConfig, TrainResult, train

# peft calls a transformers API that is deprecated in v5; not ours to fix.
pytestmark = [pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning"),
              pytest.mark.slow]  # the module trains a LoRA artifact first


@pytest.fixture(scope="module")
def lora_artifact(news_data: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    config = TrainConfig(data=news_data, out=tmp_path_factory.mktemp("artifact"), mode="lora",
                         max_rows=40, epochs=1, progress=False, limit_minutes=None)
    return train(config, note=lambda _m: None)


@pytest.fixture
def artifact(lora_artifact: TrainResult, tmp_path: Path) -> Path:
    """A private copy of the trained artifact, free to damage."""
    copy = tmp_path / "model"
    shutil.copytree(lora_artifact.out, copy)
    return copy


def test_intact_copy_loads(artifact: Path) -> None:
    assert load_model(artifact).manifest.mode == "lora"


def test_edited_head_bytes(artifact: Path) -> None:
    head = artifact / "head.safetensors"
    data = bytearray(head.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside the weights
    head.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match the manifest"):
        load_model(artifact)


def test_bad_manifest_json(artifact: Path) -> None:
    path = artifact / "manifest.json"
    path.write_text(path.read_text(encoding="utf-8")[:-20], encoding="utf-8")
    with pytest.raises(ArtifactError, match="not readable JSON"):
        load_model(artifact)


def test_missing_adapter(artifact: Path) -> None:
    shutil.rmtree(artifact / "adapter")
    with pytest.raises(ArtifactError, match="lacks adapter"):
        load_model(artifact)


def test_missing_head(artifact: Path) -> None:
    (artifact / "head.safetensors").unlink()
    with pytest.raises(ArtifactError, match=r"lacks head\.safetensors"):
        load_model(artifact)
