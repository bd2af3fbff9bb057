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
