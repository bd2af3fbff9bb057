"""training.batches: bucketed, token-budgeted, shuffled epoch batches."""

from __future__ import annotations

import numpy as np

from docstream.training.batches import epoch_batches, fixed_batches


def test_epoch_batches_cover_everything_within_budget() -> None:
    lengths = np.random.default_rng(0).integers(5, 128, 1000).tolist()
    batches = epoch_batches(lengths, max_tokens=1024, max_batch_size=64, seed=1)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    for b in batches:
        assert len(b) <= 64
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 1024


def test_epoch_batches_are_seeded_and_vary_by_epoch() -> None:
    lengths = list(range(1, 301))
    a = epoch_batches(lengths, 512, 32, seed=7)
    assert a == epoch_batches(lengths, 512, 32, seed=7)
    assert a != epoch_batches(lengths, 512, 32, seed=8)


def test_fixed_batches() -> None:
    batches = fixed_batches(10, 4, seed=0)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(i for b in batches for i in b) == list(range(10))
