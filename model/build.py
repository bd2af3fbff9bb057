"""The one way to build a document classifier: a network + its artifact's settings.

Every place that classifies documents (the Beam handler, training's validation and precision
checks, `docstream evaluate`, the accuracy benchmark row and bench/gpu.py) calls
`build_classifier`, so the Predictor's numeric mode, token budget and threads are decided
the same way everywhere. Imports no pydantic: a `ModelManifest` is read only by attribute
(`ClassifierSpec.from_manifest`), and bench/gpu.py passes a `ClassifierSpec` directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .classify import ClassifierSpec, DocClassifier
from .predictor import CPU_MAX_BATCH_SIZE, Precision, Predictor

if TYPE_CHECKING:
    from .artifact import ModelManifest


def classifier_spec(settings: ClassifierSpec | ModelManifest) -> ClassifierSpec:
    """`settings` as a ClassifierSpec (a manifest is converted, a spec returned as is)."""
    if isinstance(settings, ClassifierSpec):
        return settings
    return ClassifierSpec.from_manifest(settings)


def build_classifier(
    settings: ClassifierSpec | ModelManifest,
    module: nn.Module,
    *,
    device: str | torch.device | None = None,
    precision: Precision = "auto",
    review_threshold: float | None = None,
    max_tokens_per_batch: int | None = None,
    max_batch_size: int | None = None,
    threads: int | None = None,
) -> DocClassifier[Predictor]:
    """A DocClassifier over a Predictor running `module`, set up from the artifact's settings.

    Args:
        settings: the artifact's manifest (`LoadedModel.manifest`) or a ClassifierSpec.
        module: the network (`LoadedModel.module`, or one being trained).
        device: "cpu", "cuda", "cuda:1", ...; None picks CUDA when available.
        precision: numeric mode; "auto" picks the fastest of the artifact's `precision_ok`.
        review_threshold: flag predictions below this score; None keeps the artifact's.
        max_tokens_per_batch: the Predictor's token budget (None: its per-device default).
        max_batch_size: the Predictor's cap on sequences per CPU batch (None: its default).
        threads: CPU threads for torch (None: $DOCSTREAM_TORCH_THREADS, else torch's own).

    Raises:
        ValueError: a precision the device cannot run (int8 off CPU), or a bad threshold.

    Example:
        >>> from docstream.model.loader import load_model  # doctest: +SKIP
        >>> loaded = load_model(model_dir)  # doctest: +SKIP
        >>> clf = build_classifier(loaded.manifest, loaded.module, precision="fp32")  # doctest: +SKIP
        >>> clf.classify(docs)[0].label  # doctest: +SKIP
        'Sports'
    """
    spec = classifier_spec(settings).with_review_threshold(review_threshold)
    predictor = Predictor(
        module,
        device=device,
        precision=precision,
        allowed_precisions=spec.precision_ok,
        max_tokens_per_batch=max_tokens_per_batch,
        max_batch_size=CPU_MAX_BATCH_SIZE if max_batch_size is None else max_batch_size,
        threads=threads,
    )
    return DocClassifier(spec, predictor)
