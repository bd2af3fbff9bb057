"""Writing an artifact so that a killed run never leaves a manifest that looks final.

The order of a run's writes into OUT:

1. before the loop, the old manifest goes first, then the old weight files, and a
   *provisional* manifest (`"status": "provisional"`) takes the manifest's place;
   `model.artifact.read_manifest` refuses it in one line ("this artifact is provisional: a
   training run was interrupted; rerun `docstream train` with --resume");
2. after the loop, the weights are written and the provisional manifest is stamped with
   their hash, so that training can load the artifact back as `run` would
   (`allow_provisional=True`) to calibrate and check it;
3. last, the final manifest is written to a temporary file and renamed over the
   provisional one: a reader sees either the provisional manifest or the final one.

Checkpoints (OUT/checkpoints) are not touched here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from docstream.model.artifact import (
    ADAPTER_DIR,
    ENCODER_FILE,
    HEAD_FILE,
    MANIFEST,
    ModelManifest,
    TrainingInfo,
    weights_sha256,
)


def clear_artifact(out: Path) -> None:
    """Remove an earlier run's artifact files, the manifest first (not checkpoints)."""
    for name in (MANIFEST, HEAD_FILE, ENCODER_FILE):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / ADAPTER_DIR, ignore_errors=True)
    for stray in out.glob(f".{MANIFEST}.*.tmp"):  # a run killed inside an atomic write
        stray.unlink(missing_ok=True)


def write_manifest_atomic(directory: Path, manifest: ModelManifest) -> ModelManifest:
    """Stamp the weights hash and replace manifest.json in one rename; returns the stamped."""
    stamped = manifest.model_copy(update={"weights_sha256": weights_sha256(directory)})
    path = directory / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(stamped.model_dump_json(indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return stamped


def write_provisional(directory: Path, manifest: ModelManifest, stage: str,
                      **info: Any) -> ModelManifest:
    """Write `manifest` marked provisional, noting the run's `stage` ("training", ...)."""
    marked = manifest.model_copy(update={
        "status": "provisional",
        "training": TrainingInfo.model_validate({"stage": stage, **info}),
    })
    return write_manifest_atomic(directory, marked)


def begin_artifact(out: Path, draft: ModelManifest, **info: Any) -> None:
    """Clear an earlier artifact in OUT and leave a provisional manifest in its place."""
    out.mkdir(parents=True, exist_ok=True)
    clear_artifact(out)
    write_provisional(out, draft, "training", **info)
