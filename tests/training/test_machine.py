"""The measured CPU defaults for training: thread count and precision."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from docstream.training import machine
from docstream.training.config import TrainConfig
from docstream.training.machine import others_busy_cores, pick_threads, train_precision


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCSTREAM_TORCH_THREADS", raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)


def _never(*_: object) -> float:
    raise AssertionError("the machine must not be sampled")


def test_explicit_then_environment_win(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pick_threads(3, busy=_never, cores=2).threads == 3
    monkeypatch.setenv("DOCSTREAM_TORCH_THREADS", "1")
    choice = pick_threads(None, busy=_never, cores=2)
    assert (choice.threads, choice.why) == (1, "$DOCSTREAM_TORCH_THREADS")


def test_idle_small_machine_uses_both_cores() -> None:
    choice = pick_threads(None, busy=lambda: 0.1, cores=2)
    assert choice.threads == 2
    assert choice.why == "idle 2-core machine"


def test_busy_small_machine_drops_to_one_thread() -> None:
    choice = pick_threads(None, busy=lambda: 0.9, cores=2)
    assert choice.threads == 1
    assert "other processes use 0.9 of 2 cores" in choice.why


def test_larger_machine_keeps_torch_default_without_sampling(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert pick_threads(None, busy=_never, cores=16).threads == 8


def test_others_busy_cores_sees_a_spinning_process() -> None:
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert others_busy_cores(0.5) > 0.6
    finally:
        spin.kill()
        spin.wait()


@pytest.mark.parametrize(("amx", "want"), [(False, "fp32"), (True, "bf16")])
def test_cpu_precision_is_fp32_unless_amx(monkeypatch: pytest.MonkeyPatch, amx: bool,
                                          want: str) -> None:
    monkeypatch.setattr(machine, "cpu_has_amx", lambda: amx)
    config = TrainConfig(data=Path("x.jsonl"), out=Path("out"))
    assert train_precision(config, torch.device("cpu")) == want
    asked = TrainConfig(data=Path("x.jsonl"), out=Path("out"), precision="bf16")
    assert train_precision(asked, torch.device("cpu")) == "bf16"
