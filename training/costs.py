"""Measure, before the training loop, what the work after it will cost (see budget.py).

The post-loop work loads the written artifact, builds a predictor per checked precision and
runs every calibration window through each, then aggregates documents some 55 times to fit
the temperature. `measure_post_costs` times each ingredient on this machine, now: the base
encoder's load, each predictor's build (int8 quantizes a copy), a forward pass over a sample
of validation windows per precision, and one aggregation pass over the validation documents.
It costs a second or two, and it leaves the torch RNG as it found it, so a run with a limit
trains the same weights as one without.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from docstream.model.build import build_classifier
from docstream.model.classifier import TextClassifier
from docstream.model.classify import ClassifierSpec, DocClassifier

from .budget import PostCosts
from .predictors import FixedLogits
from .prepare import PreparedDocs

#: Validation windows timed per precision (one CPU batch).
SAMPLE_WINDOWS = 16
#: Disk throughput assumed for writing and hashing weights, bytes per second (conservative).
DISK_BYTES_PER_S = 100e6


def write_seconds(n_params: int, copies: int) -> float:
    """Seconds to write (and hash) `copies` float32 copies of `n_params` parameters."""
    return 0.3 + copies * 4 * n_params / DISK_BYTES_PER_S


def measure_post_costs(
    encoder: nn.Module,
    spec: ClassifierSpec,
    val: PreparedDocs,
    device: torch.device,
    checked: Sequence[str],
    train_precision: str,
    load_s: float,
    seed: int = 0,
) -> PostCosts:
    """Time the ingredients of the post-loop work on this machine.

    Args:
        encoder: the freshly loaded base encoder (not modified).
        spec: the classifier settings of the run (labels, aggregation).
        val: the validation documents.
        device: where the post-loop work runs.
        checked: the precisions the post-loop work runs, fp32 first.
        train_precision: the loop's precision (its validation passes run in it).
        load_s: measured seconds of loading the base encoder.
        seed: picks the sample windows.

    Returns:
        The costs, with `write_s` and `checkpoint_s` left at 0: they depend on the trainable
        module, built afterwards (set them with `write_seconds`).
    """
    rng_state = torch.get_rng_state()
    try:  # a head for timing only; its random init must not shift the run's RNG
        probe = TextClassifier(encoder, n_labels=len(spec.labels)).to(device).eval()
    finally:
        torch.set_rng_state(rng_state)
    chunks = [c for d in val.docs for c in d]
    pick = np.random.default_rng(seed).choice(len(chunks), size=min(SAMPLE_WINDOWS, len(chunks)),
                                              replace=False)
    sample = [chunks[int(i)] for i in pick]
    build_s: dict[str, float] = {}
    window_s: dict[str, float] = {}
    for precision in dict.fromkeys([*checked, train_precision]):
        t0 = time.perf_counter()
        built = build_classifier(spec, probe, device=device, precision=precision)  # type: ignore[arg-type]
        t1 = time.perf_counter()
        built.predictor.logits(sample)
        build_s[precision] = t1 - t0
        window_s[precision] = (time.perf_counter() - t1) / max(len(sample), 1)
    fixed = FixedLogits(chunks, np.zeros((len(chunks), len(spec.labels)), dtype=np.float32))
    t0 = time.perf_counter()
    DocClassifier(spec, fixed).probabilities(val.docs)
    doc_s = (time.perf_counter() - t0) / max(len(val), 1)
    return PostCosts(
        load_s=1.5 * load_s + 0.2,  # the artifact's load adds the adapter (merge) and hashing
        build_s=build_s,
        window_s=window_s,
        checked=tuple(checked),
        doc_s=doc_s,
        write_s=0.0,
        checkpoint_s=0.0,
    )
