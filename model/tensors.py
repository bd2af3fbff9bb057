"""Padding and autocast, written once for every forward pass docstream runs.

Used by the Predictor, by training (its loss and head-mode embedding), and by the
benchmarks' raw forward-pass baselines, so that all of them pad and cast the same way.
Imports only numpy and torch: bench/gpu.py loads it on a machine without pydantic.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch

#: Numeric modes that run without autocast: fp32, and int8 (the module itself is quantized).
NO_AUTOCAST = ("fp32", "int8")
AUTOCAST_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_for(device: torch.device | str, precision: str) -> AbstractContextManager[object]:
    """The autocast context of a resolved numeric mode on `device`.

    fp32 and int8 run without autocast; bf16 and fp16 autocast to that dtype. "auto" must be
    resolved first (model.predictor.pick_precision).

    Raises:
        ValueError: `precision` is not one of fp32, int8, bf16, fp16.
    """
    if precision in NO_AUTOCAST:
        return nullcontext()
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        raise ValueError(f"no autocast rule for precision {precision!r}; resolve 'auto' with "
                         f"pick_precision first, or use one of {[*NO_AUTOCAST, *AUTOCAST_DTYPES]}")
    device_type = device.type if isinstance(device, torch.device) else torch.device(device).type
    return torch.autocast(device_type=device_type, dtype=dtype)


def pad_batch(
    seqs: Sequence[Sequence[int]], pad_id: int = 0, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded int64 ids and attention mask of one batch, on `device` (default: CPU).

    The batch is as wide as its longest sequence (dynamic padding). On CUDA the host tensors
    are pinned and copied without blocking: pageable copies would sync the stream every batch.

    Raises:
        ValueError: `seqs` is empty.
    """
    if not seqs:
        raise ValueError("pad_batch needs at least one sequence")
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for row, s in enumerate(seqs):
        ids[row, : len(s)] = s
        mask[row, : len(s)] = 1
    t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)
    target = torch.device(device) if device is not None else None
    if target is None or target.type == "cpu":
        return t_ids, t_mask
    if target.type == "cuda":
        return (t_ids.pin_memory().to(target, non_blocking=True),
                t_mask.pin_memory().to(target, non_blocking=True))
    return t_ids.to(target), t_mask.to(target)
