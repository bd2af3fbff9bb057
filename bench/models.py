"""The model every row runs: the bundled news-topic model (LoRA merged) if it has been
trained, else the base encoder with a seeded random 4-class head, saved as a docstream
artifact so that `docstream run --model DIR` reads exactly the same network."""

from __future__ import annotations

import os
from pathlib import Path

LABELS = ["World", "Sports", "Business", "Sci/Tech"]
RANDOM_HEAD_DIR = "random-head-model"


def bundled_dir() -> Path:
    from docstream.model.bundled import bundled_model_dir

    return bundled_model_dir()


def bundled_ready() -> bool:
    return (bundled_dir() / "manifest.json").is_file()


def make_random_head_artifact(directory: Path, seed: int = 0) -> Path:
    """A mode-'head' artifact over the installed base encoder with a seeded random head."""
    import torch
    from safetensors.torch import save_file

    from docstream.model.artifact import (
        HEAD_FILE,
        BaseModelRef,
        ModelManifest,
        base_weights_sha256,
        write_manifest,
    )

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    head = torch.nn.Linear(384, len(LABELS))
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(directory / HEAD_FILE))
    manifest = ModelManifest(
        name="bench-random-head", version="0", mode="head", labels=LABELS,
        base_model=BaseModelRef(weights_sha256=base_weights_sha256()),
    )
    write_manifest(directory, manifest)
    return directory


def resolve_model(work: Path) -> tuple[Path, str]:
    """(artifact directory, kind): 'bundled' when trained, else a random-head artifact."""
    if bundled_ready():
        return bundled_dir(), "bundled"
    target = work / RANDOM_HEAD_DIR
    if not (target / "manifest.json").is_file():
        make_random_head_artifact(target)
    return target, "random-head"


def docstream_threads() -> int:
    """Apply docstream's thread rule (Predictor: $DOCSTREAM_TORCH_THREADS, else torch's
    default) and return the thread count in force."""
    import torch

    want = int(os.environ.get("DOCSTREAM_TORCH_THREADS", "0") or 0)
    if want:
        torch.set_num_threads(want)
    return torch.get_num_threads()


def load(model_dir: Path | str):
    """(module in eval mode, manifest) — through docstream's own loader (LoRA merged)."""
    from docstream.model.loader import load_model

    loaded = load_model(model_dir)
    return loaded.module.eval(), loaded.manifest


def docstream_precision(manifest) -> str:
    """The numeric mode docstream picks on this machine for this artifact."""
    import torch

    from docstream.model.predictor import pick_precision

    return pick_precision(torch.device("cpu"), "auto", manifest.precision_ok)
