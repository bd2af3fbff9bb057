"""The trainable network per mode, its parameter groups, and writing its weights."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import PreTrainedModel

from docstream.model.artifact import ADAPTER_DIR, ENCODER_FILE, HEAD_FILE
from docstream.model.batching import token_budget_batches
from docstream.model.classifier import TextClassifier, load_base_encoder
from docstream.model.encoder import BASE_MODEL_NAME
from docstream.model.loader import LoadedModel, load_model
from docstream.model.tensors import autocast_for, pad_batch

from .config import TrainConfig


def load_artifact(directory: Path, *, allow_provisional: bool = False) -> LoadedModel:
    """`model.loader.load_model`, without peft's deprecation warning about transformers v5.

    `allow_provisional`: only for training, loading its own unfinished artifact back.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        return load_model(directory, allow_provisional=allow_provisional)


#: a transformer block's modules: `encoder.layer.3.…` (BERT family), `transformer.layer.3.…`
#: (DistilBERT), `….layers.3.…`
_BLOCK = r"(.*\.)?layers?\.\d+\."


def lora_target_regex(targets: Sequence[str]) -> str:
    """A peft `target_modules` regex for the named linear layers of the encoder's blocks.

    It matches e.g. `encoder.layer.0.attention.self.query`, `encoder.layer.5.output.dense`
    and DistilBERT's `transformer.layer.0.attention.q_lin`, but not `pooler.dense`, which
    mean pooling never uses.
    """
    names = "|".join(re.escape(t) for t in targets)
    return rf"{_BLOCK}(.*\.)?({names})"


def block_linear_names(encoder: nn.Module) -> list[str]:
    """The names of every linear layer inside the encoder's transformer blocks, sorted.

    BERT, RoBERTa and XLM-R: dense, key, query, value; DistilBERT: k_lin, lin1, lin2,
    out_lin, q_lin, v_lin; DeBERTa-v2: dense, key_proj, query_proj, value_proj; MPNet:
    dense, k, o, q, v.

    Raises:
        ValueError: the encoder has no linear layer inside numbered blocks.
    """
    block = re.compile(_BLOCK)
    names = sorted({name.rsplit(".", 1)[-1] for name, m in encoder.named_modules()
                    if isinstance(m, nn.Linear) and block.match(name)})
    if not names:
        raise ValueError(f"{type(encoder).__name__} has no linear layer inside numbered blocks "
                         "(`layer.N.`) for LoRA; use --mode head or full")
    return names


def lora_targets(config: TrainConfig, encoder: nn.Module) -> list[str]:
    """The configured LoRA targets, or every linear layer of the encoder's blocks."""
    return list(config.lora_targets) if config.lora_targets else block_linear_names(encoder)


def lora_settings(config: TrainConfig, targets: Sequence[str]) -> dict[str, Any]:
    """The LoRA settings recorded in the manifest (`targets`: from `lora_targets`)."""
    return {
        "r": config.lora_r,
        "alpha": config.lora_alpha,
        "dropout": config.lora_dropout,
        "targets": list(targets),
        "target_regex": lora_target_regex(targets),
    }


def build_trainable(config: TrainConfig, n_labels: int,
                    encoder: PreTrainedModel | None = None) -> TextClassifier:
    """The base encoder + a fresh head, with only the mode's parameters trainable.

    head: the encoder is frozen. lora: peft LoRA adapters are injected into the encoder's
    linear layers (`lora_targets`) and only they (and the head) train. full: everything
    trains. `encoder`: a freshly loaded base encoder to use (default: load the bundled one).
    """
    if encoder is None:
        encoder = load_base_encoder()
    module = TextClassifier(encoder, n_labels=n_labels)
    if config.mode == "head":
        module.encoder.requires_grad_(False)
    elif config.mode == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=lora_target_regex(lora_targets(config, encoder)),
            bias="none",
        )
        with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
            warnings.filterwarnings("ignore", category=FutureWarning)
            module.encoder = get_peft_model(encoder, lora)
    return module


def param_groups(module: TextClassifier, config: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: encoder params at `lr`, head at `head_lr`; no decay on biases/norms."""
    groups: list[dict[str, Any]] = []
    for part, lr in ((module.encoder, config.lr), (module.head, config.head_lr)):
        decay, no_decay = [], []
        for name, p in part.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
        if decay:
            groups.append({"params": decay, "lr": lr, "weight_decay": config.weight_decay})
        if no_decay:
            groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0})
    return groups


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the trainable parameters, by name."""
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


def load_trainable_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy `state` (from `trainable_state`) back into the module's parameters."""
    params = dict(module.named_parameters())
    missing = [n for n in state if n not in params]
    if missing:
        raise KeyError(f"state has parameters the module lacks: {missing[:3]}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def embed_chunks(
    module: TextClassifier,
    chunks: Sequence[Sequence[int]],
    device: torch.device,
    precision: str,
    max_tokens: int = 4096,
) -> torch.Tensor:
    """Mean-pooled encoder vectors (float32) of the chunks, in input order, in eval mode."""
    module.eval()
    out = torch.empty((len(chunks), module.head.in_features), dtype=torch.float32)
    batches = token_budget_batches([len(c) for c in chunks], max_tokens, 256)
    with torch.inference_mode(), autocast_for(device, precision):
        for idx in batches:
            ids, mask = pad_batch([chunks[i] for i in idx], module.pad_id, device)
            out[idx] = module.embed(ids, mask).float().cpu()
    return out


def save_weights(module: TextClassifier, config: TrainConfig, directory: Path,
                 base_name: str = BASE_MODEL_NAME) -> None:
    """Write the mode's weight files into an artifact directory (no manifest).

    `base_name`: the base encoder's name, recorded in the LoRA adapter's config.
    """
    directory.mkdir(parents=True, exist_ok=True)
    head = {k: v.detach().float().contiguous().cpu() for k, v in module.head.state_dict().items()}
    save_file(head, str(directory / HEAD_FILE))
    if config.mode == "full":
        enc = module.encoder.state_dict()
        save_file({k: v.detach().float().contiguous().cpu() for k, v in enc.items()},
                  str(directory / ENCODER_FILE))
    elif config.mode == "lora":
        adapter = directory / ADAPTER_DIR
        module.encoder.save_pretrained(str(adapter))
        (adapter / "README.md").unlink(missing_ok=True)  # peft's model card: not needed
        cfg_path = adapter / "adapter_config.json"
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        cfg["base_model_name_or_path"] = base_name  # not this machine's folder
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
