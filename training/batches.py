"""Training batches: token-budget batches over length buckets, shuffled per epoch.

Sorting everything by length would give the least padding but the same batches in every
epoch. Here each epoch shuffles the examples, cuts them into pools of about 50 batches,
sorts each pool by length and cuts it into token-budget batches, then shuffles the order of
the batches. Padding stays low and both batch contents and order change between epochs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from docstream.model.batching import token_budget_batches


def epoch_batches(
    lengths: Sequence[int],
    max_tokens: int,
    max_batch_size: int,
    seed: int,
    pool_batches: int = 50,
) -> list[list[int]]:
    """Batches of example indices for one epoch; deterministic for a seed.

    Args:
        lengths: token count of each example.
        max_tokens: budget for `batch size * longest example` per batch.
        max_batch_size: most examples per batch.
        seed: seed of this epoch's shuffles (derive it from the run seed and the epoch).
        pool_batches: batches' worth of examples sorted together.

    Returns:
        Index lists; every index appears exactly once.
    """
    n = len(lengths)
    if n == 0:
        return []
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    mean_len = max(float(np.mean(lengths)), 1.0)
    per_batch = max(1, min(max_batch_size, int(max_tokens // mean_len)))
    pool = max(per_batch * pool_batches, 1)
    batches: list[list[int]] = []
    for start in range(0, n, pool):
        idx = order[start : start + pool]
        sub = token_budget_batches([lengths[i] for i in idx], max_tokens, max_batch_size)
        batches += [[int(idx[j]) for j in b] for b in sub]
    perm = rng.permutation(len(batches))
    return [batches[i] for i in perm]


def fixed_batches(n: int, batch_size: int, seed: int) -> list[list[int]]:
    """Shuffled fixed-size batches of indices (for head training on cached embeddings)."""
    order = np.random.default_rng(seed).permutation(n)
    return [order[i : i + batch_size].tolist() for i in range(0, n, batch_size)]


def sample_windows(doc_sizes: Sequence[int], per_doc: int, seed: int) -> np.ndarray:
    """Example indices of one epoch that keep at most `per_doc` windows of each document.

    Examples are laid out document by document (`doc_sizes[i]` windows of document i, in
    order). A document with more windows than `per_doc` contributes `per_doc` of them, drawn
    afresh each epoch (a different `seed`), so over several epochs the model still sees most
    of a long document while each epoch costs about `per_doc` windows per document.

    Returns:
        Sorted example indices.
    """
    if per_doc < 1:
        raise ValueError(f"per_doc must be at least 1, not {per_doc}")
    rng = np.random.default_rng(seed)
    picked: list[np.ndarray] = []
    start = 0
    for size in doc_sizes:
        if size <= per_doc:
            picked.append(np.arange(start, start + size))
        else:
            picked.append(start + np.sort(rng.choice(size, per_doc, replace=False)))
        start += size
    return np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)
