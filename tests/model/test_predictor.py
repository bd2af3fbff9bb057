"""Predictor: the numeric mode picked per device and artifact, and int8 on a small module."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from docstream.model import predictor as pred_mod
from docstream.model.predictor import Predictor, check_precision, pick_precision, quantize_int8

CPU = torch.device("cpu")


class TinyClassifier(nn.Module):
    """Embedding + mean pooling + two Linear layers: the shape of docstream's module."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(50, 32)
        self.hidden = nn.Linear(32, 32)
        self.head = nn.Linear(32, 3)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids) * mask.unsqueeze(-1)
        pooled = h.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return self.head(torch.relu(self.hidden(pooled)))


@pytest.fixture
def flags(monkeypatch: pytest.MonkeyPatch):
    def set_flags(*names: str) -> None:
        monkeypatch.setattr(pred_mod, "_cpu_flags", lambda: frozenset(names))

    return set_flags


@pytest.mark.parametrize(
    ("cpu_flags", "allowed", "expected"),
    [
        (("amx_bf16", "avx512_bf16"), ("fp32", "bf16", "int8"), "bf16"),  # AMX: bf16 wins
        (("avx512_bf16",), ("fp32", "bf16", "int8"), "int8"),  # no AMX: int8 wins
        (("avx512_bf16",), ("fp32", "bf16"), "bf16"),  # int8 not checked for this artifact
        ((), ("fp32", "bf16"), "fp32"),  # no fast bf16 at all
        ((), ("fp32",), "fp32"),
    ],
)
def test_auto_picks_the_fastest_checked_mode(flags, cpu_flags, allowed, expected) -> None:
    flags(*cpu_flags)
    assert pick_precision(CPU, "auto", allowed) == expected


def test_explicit_precision_wins(flags) -> None:
    flags("amx_bf16")
    assert pick_precision(CPU, "fp32", ("fp32", "bf16")) == "fp32"


def test_int8_quantizes_linears_and_keeps_predictions_close() -> None:
    module = TinyClassifier().eval()
    q = quantize_int8(module)
    assert isinstance(module.hidden, nn.Linear)  # the original is left alone
    assert not isinstance(q.hidden, nn.Linear) and "Linear" in type(q.hidden).__name__
    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(1, 50, size=int(rng.integers(3, 20)))) for _ in range(64)]
    fp32 = Predictor(module, device="cpu", precision="fp32").logits(seqs)
    int8 = Predictor(TinyClassifier(), device="cpu", precision="int8").logits(seqs)
    assert int8.shape == fp32.shape == (64, 3)
    assert np.abs(int8 - fp32).max() < 0.1
    assert (int8.argmax(1) == fp32.argmax(1)).mean() >= 0.9


def test_int8_refuses_a_gpu() -> None:
    """A CUDA device with int8 is refused before anything touches the device.

    No GPU is needed: the check runs on the requested device's type, before the module is
    moved, so this holds on a CPU-only machine and on a GPU machine alike.
    """
    with pytest.raises(ValueError, match=r"int8 .* CPU only, not cuda"):
        check_precision(torch.device("cuda"), "int8")
    with pytest.raises(ValueError, match=r"int8 .* CPU only, not cuda:1"):
        Predictor(TinyClassifier(), device="cuda:1", precision="int8")
    check_precision(CPU, "int8")  # allowed on CPU
    check_precision(torch.device("cuda"), "bf16")  # other modes are fine on a GPU


def test_unresolved_or_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown precision 'auto'"):
        check_precision(CPU, "auto")
    fp8: Any = "fp8"  # not a Precision: what a typo in a config would pass
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        Predictor(TinyClassifier(), device="cpu", precision=fp8)


def test_logits_keep_input_order_across_token_budget_batches() -> None:
    """Sequences are sorted by length into batches; the logits come back in input order."""
    module = TinyClassifier().eval()
    rng = np.random.default_rng(1)
    seqs = [list(rng.integers(1, 50, size=int(n))) for n in rng.integers(2, 30, size=40)]
    batched = Predictor(module, device="cpu", precision="fp32", max_tokens_per_batch=64)
    one_by_one = np.concatenate([batched.logits([s]) for s in seqs])
    np.testing.assert_allclose(batched.logits(seqs), one_by_one, rtol=1e-5, atol=1e-5)
