"""Contiguous low-water marks of Kafka partitions, from batches that finish out of order."""

from __future__ import annotations

from collections.abc import Mapping

from .records import Span


class LowWaterMarks:
    """Tracks, per partition, the offset below which every offset is stored.

    Example:
        >>> marks = LowWaterMarks({("t", 0): 0})
        >>> marks.complete(Span("t", 0, 10, 20))  # finished first, but 0..9 is not done yet
        >>> marks.position("t", 0)
        0
        >>> marks.complete(Span("t", 0, 0, 10))
        >>> marks.position("t", 0)
        20
    """

    def __init__(self, start: Mapping[tuple[str, int], int] | None = None) -> None:
        self._next: dict[tuple[str, int], int] = dict(start or {})
        self._done: dict[tuple[str, int], dict[int, int]] = {}

    def position(self, topic: str, partition: int) -> int | None:
        return self._next.get((topic, partition))

    def preview(self, span: Span) -> int:
        """The partition's position if `span` were complete; changes nothing."""
        return self._advance(span, commit=False)

    def complete(self, span: Span) -> None:
        """Record that every offset in `span` has its row; advance the mark if contiguous."""
        self._advance(span, commit=True)

    def _advance(self, span: Span, commit: bool) -> int:
        key = (span.topic, span.partition)
        # No known start: the first span seen starts the partition. The pipeline passes
        # the resolved start offsets, so this only happens for a partition added later.
        nxt = self._next.get(key, span.start)
        if span.end <= nxt:
            return nxt  # a replay of something already durable
        done = dict(self._done.get(key, {}))
        begin = max(span.start, nxt)
        done[begin] = max(span.end, done.get(begin, 0))
        while nxt in done:
            nxt = done.pop(nxt)
        if commit:
            self._next[key] = nxt
            self._done[key] = done
        return nxt
