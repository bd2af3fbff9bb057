from __future__ import annotations

import random

from docstream.pipelines.offsets import LowWaterMarks
from docstream.pipelines.records import Span


def test_mark_waits_for_the_gap() -> None:
    m = LowWaterMarks({("t", 0): 100})
    m.complete(Span("t", 0, 120, 150))
    m.complete(Span("t", 0, 150, 160))
    assert m.position("t", 0) == 100
    assert m.preview(Span("t", 0, 100, 120)) == 160
    assert m.position("t", 0) == 100  # preview changes nothing
    m.complete(Span("t", 0, 100, 120))
    assert m.position("t", 0) == 160


def test_partitions_are_independent_and_replays_ignored() -> None:
    m = LowWaterMarks({("t", 0): 0, ("t", 1): 0})
    m.complete(Span("t", 1, 0, 5))
    m.complete(Span("t", 1, 0, 5))  # replay
    assert m.position("t", 0) == 0 and m.position("t", 1) == 5


def test_random_completion_order_reaches_the_end() -> None:
    spans = [Span("t", 0, i * 10, i * 10 + 10) for i in range(200)]
    random.Random(1).shuffle(spans)
    m = LowWaterMarks({("t", 0): 0})
    seen_max = 0
    for s in spans:
        m.complete(s)
        pos = m.position("t", 0)
        assert pos is not None and pos >= seen_max  # never moves back
        seen_max = pos
    assert m.position("t", 0) == 2000
