"""The network: a base encoder, mean pooling, and a linear classification head."""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel

from .encoder import BaseEncoder, default_base, offline
from .errors import BaseEncoderError


def load_base_encoder(random_weights: bool = False,
                      base: BaseEncoder | None = None) -> PreTrainedModel:
    """The base encoder (default: the bundled MiniLM-L6), or random weights of its config.

    Read from its local folder only (the hub is never asked). Random weights have the same
    shapes and speed; the GPU benchmark uses them because the real weights do not travel to
    that machine.

    Raises:
        BaseEncoderError: transformers cannot build a model from the folder.
    """
    offline()
    base = base or default_base()
    try:
        if random_weights:
            config = AutoConfig.from_pretrained(str(base.path), local_files_only=True)
            return AutoModel.from_config(config)
        return AutoModel.from_pretrained(str(base.path), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise BaseEncoderError(f"base encoder {base.name} ({base.location}) does not load: "
                               f"{str(e).splitlines()[0] if str(e) else e!r}") from e


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors, ignoring padding (sentence-transformers' pooling)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1.0)
    return summed / counts


class TextClassifier(nn.Module):
    """Encoder + mean pooling + dropout + linear head, returning logits.

    Any Hugging Face encoder whose output has `last_hidden_state` fits (BERT, RoBERTa,
    DistilBERT, DeBERTa-v2, MPNet, XLM-R): only input ids and the attention mask are passed.
    """

    def __init__(self, encoder: nn.Module, n_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        if n_labels < 2:
            raise ValueError(f"a classifier needs at least 2 labels, got {n_labels}")
        self.encoder = encoder
        hidden = int(getattr(encoder.config, "hidden_size", 384))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_labels)

    @property
    def pad_id(self) -> int:
        """The encoder's padding id (its config's `pad_token_id`; 0 when it names none)."""
        pad = getattr(self.encoder.config, "pad_token_id", None)
        return int(pad) if isinstance(pad, int) else 0

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return mean_pool(out.last_hidden_state, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.embed(input_ids, attention_mask)
        return self.head(self.dropout(pooled))
