"""Checkpoints in OUT/checkpoints/, so `--resume` continues a run.

One is written after every epoch (`epoch-NNN.pt`, NNN epochs done) and one where the time
budget stops the loop inside an epoch (`epoch-NNN_bBBBBBB.pt`: NNN epochs and BBBBBB
batches of the next one done); names sort in training order, and only the newest is kept.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from docstream.errors import ConfigError

CHECKPOINT_DIR = "checkpoints"


@dataclass
class TrainState:
    """What a run needs to continue after a completed epoch or a budget stop.

    Attributes:
        epoch: epochs completed.
        step: optimizer steps done.
        batch: batches done of the epoch in progress (0 at an epoch's end; a budget stop
            inside an epoch leaves it > 0, and --resume continues from that batch).
        best_metric: best validation metric so far (-1 before any evaluation).
        best_state: trainable parameters at the best evaluation.
        bad_evals: evaluations since the best one (for early stopping).
        history: one dict per evaluation.
        seconds: training seconds spent before this checkpoint.
        stopped: why training ended early, if it did ("early_stopping", "budget").
    """

    epoch: int = 0
    step: int = 0
    batch: int = 0
    best_metric: float = -1.0
    best_state: dict[str, torch.Tensor] | None = None
    bad_evals: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str | None = None


def checkpoint_dir(out: Path) -> Path:
    """OUT/checkpoints."""
    return out / CHECKPOINT_DIR


def latest_checkpoint(out: Path) -> Path | None:
    """The newest checkpoint in OUT/checkpoints, if any."""
    found = sorted(checkpoint_dir(out).glob("epoch-*.pt"))
    return found[-1] if found else None


def save_checkpoint(
    out: Path,
    *,
    config: dict[str, Any],
    state: TrainState,
    model_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write OUT/checkpoints/epoch-NNN[_bBBBBBB].pt atomically and drop older ones.

    `extra`: what else the run needs to resume the same way (distillation: the number of
    unlabelled texts used), read back as `payload["extra"]`.
    """
    directory = checkpoint_dir(out)
    directory.mkdir(parents=True, exist_ok=True)
    inside = f"_b{state.batch:06d}" if state.batch else ""
    path = directory / f"epoch-{state.epoch:03d}{inside}.pt"
    payload = {
        "config": config,
        "state": state.__dict__,
        "model": model_state,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "extra": dict(extra or {}),
        "rng": {
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),
            "python": random.getstate(),
        },
    }
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    for old in directory.glob("epoch-*.pt"):
        if old != path:
            old.unlink()
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`.

    Raises:
        ConfigError: the file is unreadable.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as e:
        raise ConfigError(f"checkpoint {path} does not load ({e}); delete it to start over") from e
    payload["state"] = TrainState(**payload["state"])
    return payload


def restore_rng(payload: dict[str, Any]) -> None:
    """Put the RNGs back where the checkpoint left them."""
    rng = payload["rng"]
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])


def remove_checkpoints(out: Path) -> None:
    """Delete OUT/checkpoints."""
    shutil.rmtree(checkpoint_dir(out), ignore_errors=True)
