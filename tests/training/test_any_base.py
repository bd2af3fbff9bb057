"""Training on any base encoder: LoRA finds every family's linear layers, and an adapter
written over a folder base loads back (merged) to the same network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from docstream.model.artifact import BaseModelRef, ModelManifest, write_manifest
from docstream.model.classifier import load_base_encoder
from docstream.model.encoder import resolve_base
from docstream.model.loader import load_model
from docstream.training.config import TrainConfig
from docstream.training.modeling import (
    block_linear_names,
    build_trainable,
    lora_settings,
    lora_targets,
    save_weights,
)
from tests.tiny_encoders import FAMILIES

# peft calls a transformers API that is deprecated in v5; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")

LINEAR = {
    "bert": ["dense", "key", "query", "value"],
    "roberta": ["dense", "key", "query", "value"],
    "xlm-roberta": ["dense", "key", "query", "value"],
    "distilbert": ["k_lin", "lin1", "lin2", "out_lin", "q_lin", "v_lin"],
    "deberta-v2": ["dense", "key_proj", "query_proj", "value_proj"],
    "mpnet": ["dense", "k", "o", "q", "v"],
}


def test_bundled_minilm_keeps_its_lora_layers() -> None:
    assert block_linear_names(load_base_encoder()) == LINEAR["bert"]


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_on_every_linear_layer_of_each_family(tiny_encoders: Callable[[str], Path],
                                                   family: str, tmp_path: Path) -> None:
    base = resolve_base(tiny_encoders(family))
    encoder = load_base_encoder(base=base)
    n_blocks_linear = sum(isinstance(m, torch.nn.Linear) and ".layer." in f".{n}"
                          for n, m in encoder.named_modules())
    assert block_linear_names(encoder) == LINEAR[family]
    config = TrainConfig(data=tmp_path / "unused.jsonl", out=tmp_path / "model", mode="lora",
                         base=str(base.path))
    targets = lora_targets(config, encoder)
    torch.manual_seed(0)
    module = build_trainable(config, 3, encoder=encoder)
    adapted = [n for n, m in module.encoder.named_modules() if hasattr(m, "lora_A")]
    assert len(adapted) == n_blocks_linear > 0  # every block's linear layer, nothing else

    ids = torch.tensor([[module.pad_id + 1, 7, 8, 9, 10]])
    mask = torch.ones_like(ids)
    with torch.no_grad():  # make the adapters matter: LoRA's B starts at zero
        for name, p in module.encoder.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    module.eval()
    with torch.no_grad():
        want = module(ids, mask)

    out = tmp_path / "model"
    save_weights(module, config, out, base.name)
    write_manifest(out, ModelManifest(name="tiny", version="0.0.1", mode="lora",
                                      labels=["a", "b", "c"], base_model=BaseModelRef.of(base),
                                      lora=lora_settings(config, targets)))
    loaded = load_model(out)
    assert not any("lora" in n for n, _ in loaded.module.named_parameters())  # merged
    with torch.no_grad():
        got = loaded.module(ids, mask)
    assert torch.allclose(got, want, atol=1e-5)
