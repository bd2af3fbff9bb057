"""The Kafka source on the real broker and the real Prism runner: spans tile every offset
(transaction markers and aborted records included), start offsets are honoured, one element
per poll, and a partition's restriction only ever splits to checkpoint."""

from __future__ import annotations

import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.options.pipeline_options import PipelineOptions
from kafka import KafkaProducer

from docstream.pipelines.prism import find_prism
from docstream.streaming.admin import beginning_offsets, resolve_start_offsets, topic_partitions
from docstream.streaming.errors import StreamingError
from docstream.streaming.flow import InFlight
from docstream.streaming.records import KafkaBatch
from docstream.streaming.source import UNBOUNDED, PartitionTracker, ReadFromKafkaPartitions
from tests.stream_helpers import wait_for


@pytest.fixture(autouse=True, scope="module")
def _quiet_exit() -> Iterator[None]:
    # cancelling a job makes the in-process SDK worker log the bundles it was running
    logging.getLogger("apache_beam.runners.worker.sdk_worker").setLevel(logging.CRITICAL)
    yield
    # Beam stops its Prism job server at interpreter exit and logs it, after pytest has
    # closed the captured streams ("I/O operation on closed file"): not worth a warning.
    logging.getLogger("apache_beam.utils.subprocess_server").setLevel(logging.ERROR)


def test_tracker_only_splits_to_checkpoint() -> None:
    t = PartitionTracker(OffsetRange(10, UNBOUNDED))
    assert not t.is_bounded()
    assert t.try_split(0.5) is None  # would invent a second reader of the partition
    assert t.try_claim(19)  # a poll covered 10..19
    primary, residual = t.try_split(0)
    assert (primary.start, primary.stop) == (10, 20)
    assert (residual.start, residual.stop) == (20, UNBOUNDED)
    t.check_done()


class _Record(beam.DoFn):
    """Appends each batch's span and offsets to a file (the test reads it back)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def process(self, b: KafkaBatch) -> Iterator[None]:
        line = {"tp": [b.topic, b.partition], "start": b.start, "end": b.end,
                "offsets": [r.offset for r in b.records], "values": [r.value.decode()
                                                                    for r in b.records]}
        with open(self.path, "a") as f:
            f.write(json.dumps(line) + "\n")
        return iter(())


def read_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def run_source(tmp_path: Path, bootstrap: str, topic: str, starts: dict, until: Callable,
               **kwargs: object) -> list[dict]:
    out = tmp_path / f"batches-{uuid.uuid4().hex[:6]}.jsonl"
    opts = PipelineOptions(["--runner=PrismRunner", f"--prism_location={find_prism()}",
                            "--prism_log_level=warn", "--streaming"])
    p = beam.Pipeline(options=opts)
    _ = (p | ReadFromKafkaPartitions(bootstrap, [topic], starts, **kwargs)
         | beam.ParDo(_Record(str(out))))
    result = p.run()
    try:
        wait_for(lambda: until(read_lines(out)), 120, "the source's batches")
    finally:
        result.cancel()
    return read_lines(out)


def test_spans_tile_offsets_across_transaction_markers(
    kafka_bootstrap: str, kafka_topic: Callable[..., str], tmp_path: Path,
) -> None:
    topic = kafka_topic(2)
    tx = KafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"tx-{topic}")
    tx.init_transactions()
    sent = {0: [], 1: []}
    for round_ in range(6):
        tx.begin_transaction()
        for i in range(50):
            part = i % 2
            value = f"r{round_}-{i}"
            tx.send(topic, value=value.encode(), partition=part)
            if round_ != 3:
                sent[part].append(value)
        if round_ == 3:
            tx.abort_transaction()  # these 50 are skipped by read_committed: still covered
        else:
            tx.commit_transaction()
    tx.close()
    starts = resolve_start_offsets(kafka_bootstrap, [topic])
    ends = {(topic, p): None for p in (0, 1)}

    def done(lines: list[dict]) -> bool:
        got = {p: sum(len(x["offsets"]) for x in lines if x["tp"][1] == p) for p in (0, 1)}
        return got[0] >= len(sent[0]) and got[1] >= len(sent[1])

    lines = run_source(tmp_path, kafka_bootstrap, topic, starts, done, max_records=40,
                       poll_timeout_ms=50, idle_delay_s=0.05)
    for part in (0, 1):
        mine = sorted((x for x in lines if x["tp"][1] == part), key=lambda x: x["start"])
        assert mine[0]["start"] == 0
        for a, b in itertools.pairwise(mine):
            assert a["end"] == b["start"]  # no gap, no overlap
        offsets = [o for x in mine for o in x["offsets"]]
        assert all(x["start"] <= o < x["end"] for x in mine for o in x["offsets"])
        assert [v for x in mine for v in x["values"]] == sent[part]  # aborted ones skipped
        assert len(offsets) == len(set(offsets))
        assert max(len(x["offsets"]) for x in mine) <= 40  # one element per poll, bounded
        ends[(topic, part)] = mine[-1]["end"]
    # the last span reaches past the final commit marker: nothing left to re-read
    last = {k: v for k, v in ends.items()}
    assert all(v is not None and v >= len(sent[k[1]]) + 1 for k, v in last.items())


def test_start_offsets_and_gate(
    kafka_bootstrap: str, kafka_topic: Callable[..., str], tmp_path: Path,
) -> None:
    topic = kafka_topic(3)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i in range(300):
        producer.send(topic, value=f"m{i}".encode(), partition=i % 3)
    producer.flush()
    producer.close()
    # partition 1 resumes at offset 60 (as if stored), the others start at the beginning
    starts = resolve_start_offsets(kafka_bootstrap, [topic], {(topic, 1): 60})
    assert starts == {(topic, 0): 0, (topic, 1): 60, (topic, 2): 0}
    gate = InFlight(f"test-{topic}", limit=10**9)
    try:
        lines = run_source(
            tmp_path, kafka_bootstrap, topic, starts,
            lambda ls: sum(len(x["offsets"]) for x in ls) >= 240, max_records=25,
            poll_timeout_ms=20, idle_delay_s=0.05, gate=gate)
        by_part = {p: sorted(o for x in lines if x["tp"][1] == p for o in x["offsets"])
                   for p in range(3)}
        assert by_part[0] == list(range(100)) and by_part[2] == list(range(100))
        assert by_part[1] == list(range(60, 100))
        st = gate.state()
        assert st.emitted_records == 240 and st.records == 240  # nothing marked done here
    finally:
        gate.reset()


def test_held_back_source_polls_nothing(
    kafka_bootstrap: str, kafka_topic: Callable[..., str], tmp_path: Path,
) -> None:
    topic = kafka_topic(1)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for _i in range(20):
        producer.send(topic, value=b"x", partition=0)
    producer.flush()
    producer.close()
    gate = InFlight(f"test-{topic}", limit=1)
    gate.add("someone else's batch", 1)  # full
    try:
        out = tmp_path / "none.jsonl"
        opts = PipelineOptions(["--runner=PrismRunner", f"--prism_location={find_prism()}",
                                "--prism_log_level=warn", "--streaming"])
        p = beam.Pipeline(options=opts)
        _ = (p | ReadFromKafkaPartitions(kafka_bootstrap, [topic], {}, gate=gate,
                                         idle_delay_s=0.05)
             | beam.ParDo(_Record(str(out))))
        result = p.run()
        time.sleep(8)
        assert read_lines(out) == []
        gate.done("someone else's batch")  # room again: it reads
        wait_for(lambda: sum(len(x["offsets"]) for x in read_lines(out)) == 20, 60,
                 "the 20 records once admitted")
        result.cancel()
    finally:
        gate.reset()


def test_missing_topic_is_a_clear_error(kafka_bootstrap: str) -> None:
    with pytest.raises(StreamingError, match="does not exist") as e:
        topic_partitions(kafka_bootstrap, [f"missing-{uuid.uuid4().hex[:8]}"])
    assert "docstream produce" in str(e.value)


def test_stored_position_below_retention_starts_at_beginning(
    kafka_bootstrap: str, kafka_topic: Callable[..., str],
) -> None:
    from kafka.admin import KafkaAdminClient
    from kafka.structs import TopicPartition

    topic = kafka_topic(1)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for _ in range(10):
        producer.send(topic, value=b"x", partition=0)
    producer.flush()
    producer.close()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.delete_records({TopicPartition(topic, 0): 4})  # as retention would
    admin.close()
    assert beginning_offsets(kafka_bootstrap, [(topic, 0)]) == {(topic, 0): 4}
    assert resolve_start_offsets(kafka_bootstrap, [topic], {(topic, 0): 2}) == {(topic, 0): 4}
    assert resolve_start_offsets(kafka_bootstrap, [topic], {(topic, 0): 7}) == {(topic, 0): 7}
