"""TrainConfig: every setting of a training run, saved in the artifact's manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from docstream.model.artifact import TrainMode
from docstream.preprocess.config import PreprocessConfig

Metric = Literal["macro_f1", "accuracy"]
TrainPrecision = Literal["auto", "fp32", "bf16"]

#: Per-mode defaults for settings left unset: (epochs, lr, head_lr).
#: head: only the linear head trains, on cached sentence vectors, so epochs are cheap.
#: lora: LoRA adapters on every linear layer of the encoder plus the head.
#: full: the whole encoder plus the head (the artifact carries a 90 MB encoder).
MODE_DEFAULTS: dict[str, tuple[int, float, float]] = {
    "head": (40, 1e-2, 1e-2),
    "lora": (3, 5e-4, 1e-3),
    "full": (3, 8e-5, 1e-3),
}

#: Early-stopping patience (evaluations without gain) per mode when unset.
PATIENCE_DEFAULTS: dict[str, int] = {"head": 5, "lora": 2, "full": 2}

#: Fields that may differ between a run and the run it resumes.
RESUME_FREE = frozenset({"resume", "limit_minutes", "keep_checkpoints", "progress", "threads"})

#: Distillation settings: recorded in the manifest's `training.distillation`, not in its
#: hyper-parameters (the teachers and the unlabelled file are paths).
DISTILL_FIELDS = frozenset({"teachers", "unlabelled", "distill_temperature", "distill_alpha"})


class TrainConfig(BaseModel):
    """Settings of `docstream train`.

    `epochs`, `lr`, `head_lr` and `patience` default per mode (MODE_DEFAULTS,
    PATIENCE_DEFAULTS); call `resolved()` to fill them in. `lr` is the learning rate of what
    trains in the encoder (the LoRA adapters or the whole encoder); in head mode it is the
    head's. `head_lr` is the head's.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: Path
    out: Path
    text_field: str = "text"
    label_field: str = "label"
    split_field: str = "split"
    title_field: str | None = "title"
    kind: Literal["news", "social"] | None = Field(
        default=None, description="Force news or social cleaning; None reads each row's `kind`."
    )
    labels: list[str] | None = Field(default=None, description="Label order; default sorted.")
    train_split: str = "train"
    val_split: str = "val"
    val_fraction: float = Field(default=0.1, gt=0.0, le=0.5)
    max_rows: int | None = Field(default=None, ge=1)

    base: str | None = Field(
        default=None,
        description="The base encoder: a local Hugging Face folder or an installed package "
        "that ships one (model.encoder.resolve_base); None: the bundled MiniLM-L6.",
    )
    mode: TrainMode = "lora"
    epochs: int | None = Field(default=None, ge=1)
    lr: float | None = Field(default=None, gt=0.0)
    head_lr: float | None = Field(default=None, gt=0.0)
    weight_decay: float = Field(default=0.01, ge=0.0)
    warmup_ratio: float = Field(default=0.06, ge=0.0, lt=1.0)
    grad_clip: float = Field(default=1.0, gt=0.0)
    batch_tokens: int = Field(default=2048, ge=64)
    max_batch_size: int = Field(default=64, ge=1)
    head_batch_size: int = Field(default=64, ge=1)
    seed: int = 0
    precision: TrainPrecision = "auto"
    threads: int | None = Field(
        default=None, ge=1,
        description="CPU threads; None: $DOCSTREAM_TORCH_THREADS, else every core, except one "
        "thread on a machine of <= 2 cores that other processes already keep busy (a second "
        "thread collapses there); see training.machine.",
    )

    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    lora_targets: list[str] | None = Field(
        default=None,
        description="Names of the linear layers that get LoRA adapters; None: every linear "
        "layer of the encoder's blocks, whatever the family calls them (query/key/value/dense "
        "for BERT, q_lin/…/lin2 for DistilBERT, query_proj/… for DeBERTa-v2, q/k/v/o for MPNet). "
        "The manifest's `lora.targets` lists the names used.",
    )

    metric: Metric = "macro_f1"
    patience: int | None = Field(
        default=None, ge=1, description="Evaluations without improvement (default per mode)."
    )
    eval_every: int = Field(default=0, ge=0, description="Also evaluate every N steps (0: no).")
    windows_per_doc: int | None = Field(
        default=None, ge=1,
        description="Train on at most this many windows of each document per epoch, drawn "
        "afresh each epoch (long documents cost less per epoch); None: every window. Not in "
        "head mode, where every window is encoded once anyway.",
    )

    teachers: list[Path] = Field(
        default_factory=list,
        description="Model artifacts to distil from (training/distill.py): the student learns "
        "from their calibrated document probabilities, averaged, as well as from the labels.",
    )
    unlabelled: Path | None = Field(
        default=None,
        description="JSON Lines of texts without labels (`text_field`, optional title and "
        "kind): more training texts that carry only the teachers' probabilities.",
    )
    distill_temperature: float = Field(default=2.0, gt=0.0, le=100.0)
    distill_alpha: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="Weight of the temperature-scaled KL term against the labels' "
        "cross-entropy (1 - alpha); unlabelled texts have the KL term only.",
    )

    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    name: str = Field(default="model", min_length=1)
    version: str = Field(default="0.1.0", min_length=1)
    review_threshold: float = Field(default=0.5, ge=0.0, le=1.0)

    resume: bool = False
    limit_minutes: float | None = Field(
        default=30.0, ge=0.0,
        description="Time budget of the whole run, in minutes: data preparation, training, "
        "calibration, precision checks and writing (training/budget.py). The loop stops "
        "early, keeping the best state, to leave time for the rest; None or 0: no limit.",
    )
    keep_checkpoints: bool = False
    progress: bool = True

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.train_split == self.val_split:
            raise ValueError("train_split and val_split must differ")
        if self.lora_targets is not None and not self.lora_targets:
            raise ValueError("lora_targets must name at least one module (or be None: all)")
        if self.unlabelled is not None and not self.teachers:
            raise ValueError("--unlabelled needs --teacher: unlabelled texts carry only the "
                             "teachers' probabilities")
        if self.unlabelled is not None and self.distill_alpha == 0:
            raise ValueError("--unlabelled with --distill-alpha 0: unlabelled texts carry only "
                             "the KL term, which alpha 0 switches off")
        seen = [str(t.resolve()) for t in self.teachers]
        twice = sorted({t for t in seen if seen.count(t) > 1})
        if twice:
            raise ValueError(f"--teacher {twice[0]} is given twice")
        return self

    def resolved(self) -> TrainConfig:
        """A copy with the per-mode defaults filled in."""
        epochs, lr, head_lr = MODE_DEFAULTS[self.mode]
        lr = self.lr if self.lr is not None else lr
        if self.mode == "head":
            head_lr = self.head_lr if self.head_lr is not None else lr
        else:
            head_lr = self.head_lr if self.head_lr is not None else head_lr
        return self.model_copy(
            update={
                "epochs": self.epochs if self.epochs is not None else epochs,
                "lr": lr,
                "head_lr": head_lr,
                "patience": self.patience or PATIENCE_DEFAULTS[self.mode],
            }
        )

    def hyperparameters(self) -> dict[str, Any]:
        """The settings that shape the model, for the manifest (paths and switches left out)."""
        skip = {"data", "out", "resume", "keep_checkpoints", "progress", "preprocess", "threads",
                "base",  # the manifest's base_model records the base
                *DISTILL_FIELDS}  # and its training.distillation the distillation
        return self.model_dump(mode="json", exclude=skip)

    def resume_differences(self, other: TrainConfig) -> list[str]:
        """Names of settings that differ from `other` and must match to resume."""
        mine = self.model_dump(mode="json")
        theirs = other.model_dump(mode="json")
        return sorted(k for k in mine if k not in RESUME_FREE and mine[k] != theirs.get(k))
