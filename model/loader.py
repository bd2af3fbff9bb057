"""Load a model artifact into a ready `TextClassifier`."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file

from .artifact import (
    ADAPTER_DIR,
    ENCODER_FILE,
    HEAD_FILE,
    ModelManifest,
    locate_base,
    read_manifest,
)
from .classifier import TextClassifier, load_base_encoder
from .encoder import BaseEncoder
from .errors import ArtifactError, BaseEncoderError


@dataclass(frozen=True)
class LoadedModel:
    manifest: ModelManifest
    module: TextClassifier
    path: Path
    #: the located base encoder (its tokenizer cuts this model's windows)
    base: BaseEncoder


def artifact_base(manifest: ModelManifest, directory: Path | None = None) -> BaseEncoder:
    """The manifest's base encoder, located and checked (model.artifact.locate_base).

    Raises:
        ArtifactError: the base is missing here or its hashes differ (one line).
    """
    try:
        return locate_base(manifest.base_model)
    except BaseEncoderError as e:
        raise ArtifactError(f"model artifact {directory or manifest.name}: {e}") from e


def build_module(manifest: ModelManifest, directory: Path | None,
                 random_weights: bool = False, base: BaseEncoder | None = None) -> TextClassifier:
    """The network described by `manifest`, with the artifact's weights if `directory`.

    `base`: the located base encoder (default: located from the manifest).
    """
    base = base or artifact_base(manifest, directory)
    encoder = load_base_encoder(random_weights=random_weights, base=base)
    module = TextClassifier(encoder, n_labels=len(manifest.labels))
    if directory is None:
        return module
    try:
        if manifest.mode == "full":
            module.encoder.load_state_dict(load_file(str(directory / ENCODER_FILE)))
        elif manifest.mode == "lora":
            from peft import PeftModel

            with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
                warnings.filterwarnings("ignore", category=FutureWarning)
                peft_model = PeftModel.from_pretrained(module.encoder,
                                                       str(directory / ADAPTER_DIR))
            module.encoder = peft_model.merge_and_unload()
        module.head.load_state_dict(load_file(str(directory / HEAD_FILE)))
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        raise ArtifactError(f"model artifact {directory}: weights do not load: {e}") from e
    return module


def load_model(directory: str | Path, *, allow_provisional: bool = False) -> LoadedModel:
    """Read, verify and load an artifact; raises ArtifactError with the reason if it can't.

    A provisional artifact (a training run that did not finish) is refused unless
    `allow_provisional` (see `read_manifest`).
    """
    path = Path(directory)
    manifest = read_manifest(path, allow_provisional=allow_provisional)
    base = artifact_base(manifest, path)
    module = build_module(manifest, path, base=base)
    module.eval()
    return LoadedModel(manifest=manifest, module=module, path=path, base=base)
