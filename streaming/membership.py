"""Consumer-group membership for a streaming worker: which partitions it may read, and when.

Several `docstream run` workers of one group split a topic's partitions through Kafka's
group protocol. `GroupMembership` is a member that never reads records itself: a kafka-python
consumer subscribed to the topics with every assigned partition paused, polled by a thread of
its own so that it joins rebalances, heartbeats, and commits the durable positions for lag
tools. The records are read by the job's source (streaming.source), which is given the
assignment when the job plans (pipelines.stream).

Assignment strategy: KIP-429's cooperative-sticky. It keeps each partition where it is when a
member joins or leaves (a worker's backlog, consumers and warm batches stay put), and only the
partitions that move are revoked, in a first rebalance, before they are assigned to their new
owner in a second: no partition ever has two owners that the protocol knows of.

Revocation: the listener runs on kafka-python's IO thread. It drops the revoked partitions
from the assignment and then blocks until the job says it has stopped reading and written
what it had in flight (`released`), at most `release_wait_s`; only then does the partition go
to its new owner. A worker that cannot finish in time (or is stalled, or was expelled) is
fenced by the owner epoch the new owner claims in the store (store.offsets).

New partitions: the consumer refreshes the topics' metadata every `metadata_max_age_ms`; a
changed partition count makes the group rebalance, and the new partitions are assigned like
any other.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.structs import OffsetAndMetadata

from .admin import CLIENT_ID, PartitionKey

log = logging.getLogger(__name__)

#: How long a revocation waits for the job to write what it read (then fencing takes over).
RELEASE_WAIT_S = 30.0


@dataclass(frozen=True, slots=True)
class Assignment:
    """The partitions this worker owns, as of membership change number `version`."""

    version: int
    partitions: frozenset[PartitionKey]


def _keys(tps: Iterable[TopicPartition]) -> set[PartitionKey]:
    return {(tp.topic, tp.partition) for tp in tps}


class _Listener(ConsumerRebalanceListener):
    def __init__(self, membership: GroupMembership) -> None:
        self.membership = membership

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.membership._revoked(_keys(revoked), wait=True)

    def on_partitions_lost(self, lost: Any) -> None:
        self.membership._revoked(_keys(lost), wait=False)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.membership._assigned(_keys(assigned))


class GroupMembership:
    """Membership of `group` for `topics`, as `worker` (see the module doc).

    Used by the job: `start()`, then `stable()` for the assignment to plan with, `reading()`
    while a plan reads, `changed()` to notice a rebalance, `released()` once a plan stopped
    and wrote what it read, `commit()` for lag tools, `close()` to leave the group.

    Example:
        >>> m = GroupMembership("127.0.0.1:9092", ["posts"], "g", "w1")  # doctest: +SKIP
        >>> m.start(); m.stable(stop=threading.Event()).partitions  # doctest: +SKIP
        frozenset({('posts', 0), ('posts', 1)})
    """

    def __init__(self, bootstrap: str, topics: Iterable[str], group: str, worker: str, *,
                 session_timeout_ms: int = 10_000, heartbeat_interval_ms: int = 1_000,
                 metadata_max_age_ms: int = 5_000, release_wait_s: float = RELEASE_WAIT_S,
                 consumer_config: Mapping[str, Any] | None = None) -> None:
        self.bootstrap = bootstrap
        self.topics = sorted(set(topics))
        self.group = group
        self.worker = worker
        self.release_wait_s = release_wait_s
        self.config: dict[str, Any] = {
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": heartbeat_interval_ms,
            "metadata_max_age_ms": metadata_max_age_ms,
            "max_poll_interval_ms": max(int(release_wait_s * 1000) * 2, 60_000),
            **(consumer_config or {}),
        }
        self._cond = threading.Condition()
        self._owned: set[PartitionKey] = set()
        self._version = 0
        self._released = 0  # the version up to which the job has released what it read
        self._reading = False
        self._joined = False
        self._commits: dict[PartitionKey, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.rebalances = 0
        self.on_change: Callable[[Assignment], None] | None = None

    # -- the job's side -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"group-{self.group}",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Leave the group (its partitions go to the other workers at once)."""
        self._stop.set()
        with self._cond:
            self._reading = False
            self._released = self._version
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def snapshot(self) -> Assignment:
        with self._cond:
            return Assignment(self._version, frozenset(self._owned))

    def stable(self, stop: threading.Event, settle_s: float = 0.5,
               timeout_s: float | None = None) -> Assignment | None:
        """The assignment once the group has joined and nothing changed for `settle_s`; marks
        the worker as reading it. None when `stop` is set (or `timeout_s` passed)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not stop.is_set():
            if self._error is not None:
                raise self._error
            if deadline is not None and time.monotonic() > deadline:
                return None
            with self._cond:
                joined, version = self._joined, self._version
            if joined and not stop.wait(settle_s):
                with self._cond:
                    if self._version == version:
                        self._reading = True
                        return Assignment(version, frozenset(self._owned))
            else:
                stop.wait(0.1)
        return None

    def changed(self, since: Assignment) -> bool:
        with self._cond:
            return self._version != since.version

    def released(self) -> None:
        """The job stopped reading and wrote what it had read: revocations may complete."""
        with self._cond:
            self._reading = False
            self._released = self._version
            self._cond.notify_all()

    def commit(self, positions: Mapping[PartitionKey, int]) -> None:
        """Commit these positions of owned partitions to the group (for lag tools only)."""
        with self._cond:
            self._commits.update({k: v for k, v in positions.items() if k in self._owned})

    # -- the listener's side (kafka-python's IO thread) ------------------------------------------

    def _revoked(self, keys: set[PartitionKey], wait: bool) -> None:
        with self._cond:
            self._owned -= keys
            self._version += 1
            self.rebalances += 1
            target = self._version
            log.info("group %s: %s revoked from worker %s%s", self.group, _names(keys),
                     self.worker, "" if wait else " (lost: this worker left the group)")
            self._cond.notify_all()
            if not (wait and self._reading):
                return
            if not self._cond.wait_for(lambda: self._released >= target,
                                       timeout=self.release_wait_s):
                log.warning("group %s: worker %s did not finish the revoked partitions within "
                            "%.0f s; they are released now and its late writes are fenced",
                            self.group, self.worker, self.release_wait_s)

    def _assigned(self, keys: set[PartitionKey]) -> None:
        with self._cond:
            self._owned |= keys
            self._version += 1
            self.rebalances += 1
            log.info("group %s: worker %s now owns %s", self.group, self.worker,
                     _names(self._owned))
            self._cond.notify_all()

    # -- the member thread ---------------------------------------------------------------------

    def _consumer(self) -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group,
            client_id=f"{CLIENT_ID}-member-{self.worker}", enable_auto_commit=False,
            partition_assignment_strategy=(CooperativeStickyAssignor,),
            auto_offset_reset="latest", fetch_max_bytes=1024, max_partition_fetch_bytes=1024,
            **self.config)
        consumer.subscribe(topics=self.topics, listener=_Listener(self))
        return consumer

    def _loop(self) -> None:
        consumer: KafkaConsumer | None = None
        try:
            consumer = self._consumer()
            while not self._stop.is_set():
                consumer.poll(timeout_ms=200)  # joins, rebalances; paused: reads nothing
                unpaused = set(consumer.assignment()) - set(consumer.paused())
                if unpaused:
                    consumer.pause(*unpaused)
                # kafka-python has no public "in a stable generation": a worker that owns
                # nothing has joined too, and must not wait for an assignment to plan
                stable = consumer._coordinator.generation_if_stable() is not None
                with self._cond:
                    if stable != self._joined:
                        self._joined = stable
                        self._cond.notify_all()
                    commits, self._commits = self._commits, {}
                if commits:
                    self._commit(consumer, commits)
        except Exception as e:  # the job sees it in stable(); the member is gone
            log.error("group %s: membership of worker %s failed: %s", self.group, self.worker, e)
            self._error = e
        finally:
            if consumer is not None:
                with contextlib.suppress(Exception):  # leaving on the way out
                    consumer.close(autocommit=False)

    def _commit(self, consumer: KafkaConsumer, positions: Mapping[PartitionKey, int]) -> None:
        owned = set(consumer.assignment())
        offsets = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                   for (t, p), o in positions.items() if TopicPartition(t, p) in owned}
        if not offsets:
            return
        try:
            consumer.commit(offsets)
        except Exception as e:  # informational only (a rebalance in between refuses it)
            log.debug("group %s: committing %d position(s) failed: %s", self.group,
                      len(offsets), e)


def _names(keys: Iterable[PartitionKey]) -> str:
    names = [f"{t}/{p}" for t, p in sorted(keys)]
    return ", ".join(names) if names else "nothing"
