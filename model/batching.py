"""Token-budget batching with length bucketing.

Sequences are sorted by length and cut greedily so that every batch's padded size
(longest sequence × number of sequences) stays within a token budget. Short texts thus
travel in large batches and long ones in small batches, with little padding in either.
"""

from __future__ import annotations

from collections.abc import Sequence


def token_budget_batches(
    lengths: Sequence[int], max_tokens: int, max_batch_size: int = 512
) -> list[list[int]]:
    """Group indices of `lengths` into batches whose padded size fits `max_tokens`.

    Args:
        lengths: token count of each sequence (after truncation to the model window).
        max_tokens: budget for `len(batch) * max(length in batch)`.
        max_batch_size: hard cap on sequences per batch.

    Returns:
        Index lists, each sorted by ascending length; every index appears exactly once.
        A single sequence longer than the budget gets a batch of its own.

    Example:
        >>> token_budget_batches([5, 100, 6, 7], max_tokens=20)
        [[0, 2], [3], [1]]
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = max(lengths[i], 1)  # sorted: the newcomer is the longest so far
        if current and (
            (len(current) + 1) * longest > max_tokens or len(current) >= max_batch_size
        ):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
