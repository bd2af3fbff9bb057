"""training.batches: bucketed, token-budgeted, shuffled epoch batches."""

from __future__ import annotations

import numpy as np

from docstream.training.batches import epoch_batches, fixed_batches, sample_windows


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


def test_sample_windows_keeps_at_most_k_per_document_and_varies_by_epoch() -> None:
    sizes = [1, 2, 7, 3, 12]
    starts = np.cumsum([0, *sizes[:-1]])
    picks = [sample_windows(sizes, 2, seed=e) for e in range(6)]
    for idx in picks:
        assert list(idx) == sorted(set(idx.tolist()))
        doc = np.searchsorted(starts, idx, side="right") - 1
        assert np.bincount(doc, minlength=len(sizes)).tolist() == [1, 2, 2, 2, 2]
    assert (sample_windows(sizes, 2, seed=0) == picks[0]).all()  # seeded
    seen_in_12 = {int(i) for p in picks for i in p if i >= starts[4]}
    assert len(seen_in_12) > 4  # epochs draw different windows of the long document
    assert sample_windows(sizes, 20, seed=0).tolist() == list(range(sum(sizes)))
