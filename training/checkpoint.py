"""Per-epoch checkpoints in OUT/checkpoints/, so `--resume` continues a run."""

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
    """What a run needs to continue after a completed epoch.

    Attributes:
        epoch: epochs completed.
        step: optimizer steps done.
        best_metric: best validation metric so far (-1 before any evaluation).
        best_state: trainable parameters at the best evaluation.
        bad_evals: evaluations since the best one (for early stopping).
        history: one dict per evaluation.
        seconds: training seconds spent before this checkpoint.
        stopped: why training ended early, if it did ("early_stopping", "time_limit").
    """

    epoch: int = 0
    step: int = 0
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
    """The newest epoch checkpoint in OUT/checkpoints, if any."""
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
) -> Path:
    """Write OUT/checkpoints/epoch-NNN.pt atomically and drop older ones."""
    directory = checkpoint_dir(out)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"epoch-{state.epoch:03d}.pt"
    payload = {
        "config": config,
        "state": state.__dict__,
        "model": model_state,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
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
