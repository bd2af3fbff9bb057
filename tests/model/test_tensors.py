"""Padding and autocast, shared by the Predictor, training and the benchmarks."""

from __future__ import annotations

import pytest
import torch

from docstream.model.tensors import autocast_for, pad_batch


def test_pad_batch_pads_right_to_the_longest_and_masks_the_padding() -> None:
    ids, mask = pad_batch([[101, 7, 102], [101, 102]], pad_id=0)
    assert ids.dtype == mask.dtype == torch.int64
    assert ids.tolist() == [[101, 7, 102], [101, 102, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert ids.device.type == "cpu"


def test_pad_batch_uses_the_given_pad_id() -> None:
    ids, mask = pad_batch([[5], [5, 6, 7]], pad_id=9, device="cpu")
    assert ids.tolist() == [[5, 9, 9], [5, 6, 7]]
    assert mask.tolist() == [[1, 0, 0], [1, 1, 1]]


def test_pad_batch_refuses_an_empty_batch() -> None:
    with pytest.raises(ValueError, match="at least one sequence"):
        pad_batch([])


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_fp32_and_int8_run_without_autocast(precision: str) -> None:
    with autocast_for(torch.device("cpu"), precision):
        assert not torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize(("precision", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_bf16_and_fp16_autocast_to_their_dtype(precision: str, dtype: torch.dtype) -> None:
    with autocast_for("cpu", precision):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == dtype


def test_auto_must_be_resolved_before_autocast() -> None:
    with pytest.raises(ValueError, match="resolve 'auto' with pick_precision"):
        autocast_for("cpu", "auto")
