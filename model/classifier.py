"""The network: the MiniLM encoder, mean pooling, and a linear classification head."""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel

from .encoder import encoder_dir, offline


def load_base_encoder(random_weights: bool = False) -> PreTrainedModel:
    """The base encoder from the installed package (or random weights of its config).

    Random weights have the same shapes and speed; the GPU benchmark uses them because the
    real weights do not travel to that machine.
    """
    offline()
    if random_weights:
        config = AutoConfig.from_pretrained(str(encoder_dir()))
        return AutoModel.from_config(config)
    return AutoModel.from_pretrained(str(encoder_dir()))


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors, ignoring padding (sentence-transformers' pooling)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1.0)
    return summed / counts


class TextClassifier(nn.Module):
    """Encoder + mean pooling + dropout + linear head, returning logits."""

    def __init__(self, encoder: nn.Module, n_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        if n_labels < 2:
            raise ValueError(f"a classifier needs at least 2 labels, got {n_labels}")
        self.encoder = encoder
        hidden = int(getattr(encoder.config, "hidden_size", 384))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_labels)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return mean_pool(out.last_hidden_state, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.embed(input_ids, attention_mask)
        return self.head(self.dropout(pooled))
