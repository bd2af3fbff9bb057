"""A trained artifact that was tampered with fails to load with a clear ArtifactError."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from docstream.model.errors import ArtifactError
from docstream.model.loader import load_model
from docstream.training.train import TrainConfig, TrainResult, train

REPO_ROOT = Path(__file__).resolve().parents[2]
# peft calls a transformers API that is deprecated in v5; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


@pytest.fixture(scope="module")
def lora_artifact(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    base = Path(os.environ.get("DOCSTREAM_SHARED", REPO_ROOT.parent / "shared"))
    data = base / "data" / "ag_news" / "ag_news.jsonl"
    if not data.is_file():
        pytest.skip(f"{data} is not available")
    config = TrainConfig(data=data, out=tmp_path_factory.mktemp("artifact"), mode="lora",
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
