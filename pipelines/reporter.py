"""The streaming job's periodic report: lag, throughput, and positions committed to the group."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import Engine

from docstream.store.offsets import load_positions
from docstream.streaming.admin import GroupCommitter, end_offsets, offsets_consumer
from docstream.streaming.flow import InFlight
from docstream.streaming.url import KafkaUrl

log = logging.getLogger(__name__)


class Committer(Protocol):
    """Commits positions to the consumer group (for lag tools)."""

    def commit(self, positions: Mapping[tuple[str, int], int]) -> Any: ...

    def close(self) -> None: ...


class Reporter:
    """Every `every_s`: durable positions (store) vs end offsets (Kafka) = lag, throughput
    from the in-process counters; one log line, and the positions committed to the group."""

    def __init__(self, engine: Engine, url: KafkaUrl, starts: Mapping[tuple[str, int], int],
                 gate: InFlight, every_s: float, enabled: bool,
                 committer: Committer | None = None) -> None:
        self.engine = engine
        self.url = url
        self.starts = dict(starts)
        self.gate = gate
        self.every_s = every_s
        self.enabled = enabled
        # a member of the group commits (streaming.membership); else a standalone committer
        self._own_committer = committer is None
        self.committer: Committer = committer or GroupCommitter(url.bootstrap, url.group)
        self._consumer: Any = None
        self._last_t = time.monotonic()
        self._last_done = 0
        self.lag: int | None = None
        self.positions: dict[tuple[str, int], int] = {}
        self.first_result_reported = False

    def lag_now(self) -> tuple[int | None, dict[tuple[str, int], int]]:
        self.positions = {**self.starts, **load_positions(self.engine, self.url.group)}
        try:
            if self._consumer is None:
                self._consumer = offsets_consumer(self.url.bootstrap, timeout_s=5)
            ends = end_offsets(self._consumer, self.positions, timeout_s=5)
        except Exception as e:  # broker away: report what we know
            log.debug("end offsets unavailable: %s", e)
            self.close_consumer()
            return None, {}
        lags = {k: max(ends[k] - self.positions.get(k, 0), 0) for k in ends}
        return sum(lags.values()), lags

    def close_consumer(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):  # closing a broken client
                self._consumer.close()
            self._consumer = None

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_t < self.every_s:
            return
        st = self.gate.state()
        rate = (st.done_records - self._last_done) / max(now - self._last_t, 1e-9)
        self._last_t, self._last_done = now, st.done_records
        try:
            self.lag, lags = self.lag_now()
            self.committer.commit(self.positions)
        except Exception as e:  # a report must never stop the job
            # During a store outage the writer already said so, once; don't repeat it here.
            (log.debug if st.paused else log.warning)("stream report failed: %s", e)
            return
        if self.enabled:
            parts = ", ".join(f"{t}/{p} {n:,}" for (t, p), n in sorted(lags.items()))
            lag = f"lag {self.lag:,} ({parts})" if self.lag is not None else "lag unknown"
            repeats = f", {st.duplicates:,} repeated" if st.duplicates else ""
            if st.paused:
                repeats += ", polls paused (store unavailable)"
            print(f"[docstream] stream {self.url.group}: {st.done_records:,} done, "
                  f"{rate:,.0f} docs/s, {lag}, in flight {st.records:,}{repeats}",
                  file=sys.stderr, flush=True)

    def first_result(self, after_s: float, load_s: float | None,
                     ready_s: float | None) -> None:
        """Say once when the first results were committed, apart from the model's loading."""
        self.first_result_reported = True
        if not self.enabled:
            return
        load = (f"; the model loaded in {load_s:.1f} s, ready at {ready_s:.1f} s"
                if load_s is not None and ready_s is not None else "")
        print(f"[docstream] stream {self.url.group}: first results written {after_s:.1f} s "
              f"after the start{load}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.close_consumer()
        if self._own_committer:
            self.committer.close()
