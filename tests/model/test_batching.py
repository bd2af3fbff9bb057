from __future__ import annotations

import random

import pytest

from docstream.model.batching import token_budget_batches


def test_every_index_once_and_budget_kept() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(5, 128) for _ in range(1000)]
    batches = token_budget_batches(lengths, max_tokens=2048, max_batch_size=64)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    for b in batches:
        assert len(b) <= 64
        assert len(b) * max(lengths[i] for i in b) <= 2048


def test_batches_are_length_bucketed() -> None:
    lengths = [100, 10, 100, 10, 100, 10]
    batches = token_budget_batches(lengths, max_tokens=60)
    assert [sorted(lengths[i] for i in b) for b in batches] == [[10] * 3, [100], [100], [100]]


def test_short_texts_get_bigger_batches_than_long_ones() -> None:
    lengths = [16] * 64 + [128] * 64
    batches = token_budget_batches(lengths, max_tokens=1024)
    sizes = {lengths[b[0]]: len(b) for b in batches}
    assert sizes[16] == 64 and sizes[128] == 8


def test_oversize_sequence_gets_its_own_batch() -> None:
    assert token_budget_batches([500, 5], max_tokens=100) == [[1], [0]]


@pytest.mark.parametrize("kwargs", [{"max_tokens": 0}, {"max_tokens": 10, "max_batch_size": 0}])
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        token_budget_batches([1, 2], **kwargs)
