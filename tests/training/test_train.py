"""training.train: tiny head and LoRA runs, manifest contents, determinism, resume."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from docstream.errors import ConfigError
from docstream.model.artifact import HEAD_FILE, read_manifest, weights_sha256
from docstream.model.errors import ArtifactError
from docstream.model.loader import load_model
from docstream.training import checkpoint as ckpt
from docstream.training.config import TrainConfig
from docstream.training.train import TrainResult, train
from tests.news_posts import LABELS as NEWS_LABELS

# peft calls a transformers API that is deprecated in v5; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


def check_manifest(result: TrainResult, news_data: Path, mode: str) -> None:
    m = read_manifest(result.out)
    assert m == result.manifest
    assert m.mode == mode
    assert m.labels == NEWS_LABELS
    assert m.training.data_sha256 == hashlib.sha256(news_data.read_bytes()).hexdigest()
    assert m.training.rows["train"] == 108 and m.training.rows["val"] == 12
    hp = m.training.hyperparameters
    assert hp["mode"] == mode and hp["epochs"] == 1 and hp["seed"] == 0 and hp["max_rows"] == 120
    assert hp["lr"] > 0 and hp["head_lr"] > 0
    assert m.training.seconds is not None and m.training.seconds > 0
    assert m.temperature > 0
    assert m.weights_sha256 == weights_sha256(result.out)
    assert "fp32" in m.precision_ok
    val = m.metrics["val"]
    assert {"accuracy", "macro_f1", "ece", "ece_uncalibrated", "nll"} <= set(val)
    assert m.preprocess.max_chunk_tokens == 128
    assert not (result.out / "checkpoints").exists()


def test_head_mode_artifact(head_model: TrainResult, news_data: Path) -> None:
    check_manifest(head_model, news_data, "head")
    assert sorted(p.name for p in head_model.out.iterdir()) == [HEAD_FILE, "manifest.json"]
    loaded = load_model(head_model.out)
    assert loaded.module.head.out_features == 4


def test_lora_mode_artifact(lora_model: TrainResult, news_data: Path) -> None:
    check_manifest(lora_model, news_data, "lora")
    m = lora_model.manifest
    assert m.lora is not None and m.lora["r"] == 16 and m.lora["alpha"] == 32
    adapter = lora_model.out / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()
    size = sum(p.stat().st_size for p in lora_model.out.rglob("*") if p.is_file())
    assert size < 5_000_000
    loaded = load_model(lora_model.out)
    assert not any("lora" in n for n, _ in loaded.module.named_parameters())  # merged


def test_same_seed_same_head_weights(head_model: TrainResult,
                                     train_tiny: Callable[..., TrainResult]) -> None:
    again = train_tiny("head")
    a = load_file(str(head_model.out / HEAD_FILE))
    b = load_file(str(again.out / HEAD_FILE))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert again.manifest.weights_sha256 == head_model.manifest.weights_sha256


@pytest.mark.slow
def test_resume_continues_to_the_same_weights(
    news_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def config(out: Path, **kw: object) -> TrainConfig:
        return TrainConfig(data=news_data, out=out, mode="head", labels=NEWS_LABELS, max_rows=80,
                           epochs=3, patience=5, progress=False, limit_minutes=None, **kw)

    straight = train(config(tmp_path / "straight"), note=lambda _m: None)

    real_save = ckpt.save_checkpoint

    def save_then_crash(out: Path, **kw: object) -> Path:
        real_save(out, **kw)  # type: ignore[arg-type]
        raise KeyboardInterrupt("simulated crash after the first epoch")

    monkeypatch.setattr(ckpt, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path / "resumed"), note=lambda _m: None)
    monkeypatch.setattr(ckpt, "save_checkpoint", real_save)
    assert ckpt.latest_checkpoint(tmp_path / "resumed") is not None
    with pytest.raises(ArtifactError, match="provisional"):  # no manifest that looks final
        load_model(tmp_path / "resumed")
    with pytest.raises(ConfigError, match="settings differ"):
        train(config(tmp_path / "resumed", resume=True, seed=5), note=lambda _m: None)
    resumed = train(config(tmp_path / "resumed", resume=True), note=lambda _m: None)
    assert resumed.manifest.training.epochs_run == 3  # type: ignore[attr-defined]
    assert resumed.manifest.weights_sha256 == straight.manifest.weights_sha256


def test_bad_settings_are_config_errors(news_data: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(data=news_data, out=tmp_path, labels=["World", "Sports"], max_rows=50,
                      progress=False)
    with pytest.raises(ConfigError, match="not in --labels"):
        train(cfg, note=lambda _m: None)
