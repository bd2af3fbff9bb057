"""`docstream replay`: stored dead letters back through the job, after a fix.

1. The open (unresolved) dead letters are read from the store, filtered by reason and time.
2. Their ORIGINAL bytes are fetched from where they still exist unredacted: the source file
   and line (checked against the sha256 the audit log recorded, so a file edited since is
   never mistaken for the original), or Kafka (`<topic>.dlq`, else the topic itself: see
   docstream.streaming.replay). The payload stored in SQL is never used: it is redacted.
3. They are then either run through the batch job in this process, AT THEIR ORIGINAL
   POSITIONS (a success writes the result row and marks the dead letter resolved in the same
   transaction; a new failure reopens it with the new reason; the audit log records each
   input under the replay's run id, with `replay_of`), or published to a Kafka topic with
   the header `docstream.replay_of` for a running streaming job (`--to`), or written to a
   JSON Lines file for inspection (`--out`).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import apache_beam as beam

from docstream.store.dead_letters import OpenDeadLetter, open_dead_letters
from docstream.store.engine import check_reachable, make_engine
from docstream.store.migrate import upgrade
from docstream.streaming.errors import KafkaUrlError
from docstream.streaming.replay import find_originals, publish_replays
from docstream.streaming.url import parse_kafka_url

from .batch import run_inputs
from .file_source import iter_lines
from .options import RunSettings
from .records import RawBatch, RawInput
from .summary import RunSummary

log = logging.getLogger(__name__)


@dataclass
class ReplaySet:
    """The originals found for the selected dead letters, and why the others were not."""

    selected: int = 0
    inputs: list[RawInput] = field(default_factory=list)
    missing: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {"selected": self.selected, "found": len(self.inputs),
                "not_found": dict(self.missing)}


def _from_files(dead: Sequence[OpenDeadLetter], out: ReplaySet) -> None:
    by_file: dict[str, dict[int, OpenDeadLetter]] = defaultdict(dict)
    for d in dead:
        by_file[d.position.file or ""][d.position.line or 0] = d
    for path, wanted in by_file.items():
        if not Path(path).is_file():
            out.missing["file gone"] += len(wanted)
            continue
        seen: set[int] = set()
        for number, body in iter_lines(path):
            d = wanted.get(number)
            if d is None:
                continue
            seen.add(number)
            if d.input_sha256 and hashlib.sha256(body).hexdigest() != d.input_sha256:
                out.missing["file line changed since"] += 1
                continue
            out.inputs.append(RawInput(d.position, body, replay_of=d.ref))
        if len(wanted) > len(seen):
            out.missing["file line gone"] += len(wanted) - len(seen)


def _from_kafka(dead: Sequence[OpenDeadLetter], out: ReplaySet) -> None:
    by_bootstrap: dict[str, list[OpenDeadLetter]] = defaultdict(list)
    for d in dead:
        try:
            bootstrap = parse_kafka_url(d.run_source or "").bootstrap
        except KafkaUrlError:
            out.missing["run names no broker"] += 1
            continue
        by_bootstrap[bootstrap].append(d)
    for bootstrap, items in by_bootstrap.items():
        refs = {(d.position.topic or "", d.position.partition or 0, d.position.offset or 0): d
                for d in items}
        found = find_originals(bootstrap, refs)
        for ref, d in refs.items():
            original = found.get(ref)
            if original is None:
                out.missing["not in the .dlq topic nor the topic"] += 1
                continue
            out.inputs.append(RawInput(d.position, original.value, key=original.key,
                                       replay_of=d.ref))


def collect(db_url: str, *, reasons: Sequence[str] = (), since: datetime | None = None,
            limit: int | None = None) -> ReplaySet:
    """The original inputs of the open dead letters that match."""
    engine = make_engine(db_url)
    try:
        check_reachable(engine)
        upgrade(engine)
        dead = open_dead_letters(engine, reasons=reasons, since=since, limit=limit)
    finally:
        engine.dispose()
    out = ReplaySet(selected=len(dead))
    _from_files([d for d in dead if d.position.kind == "file"], out)
    _from_kafka([d for d in dead if d.position.kind == "kafka"], out)
    return out


def _batches(inputs: list[RawInput], size: int) -> Iterator[RawBatch]:
    for i in range(0, len(inputs), size):
        yield RawBatch(inputs[i:i + size])


def run_replay(settings: RunSettings, found: ReplaySet) -> RunSummary:
    """Run the originals through the batch job at their original positions."""
    batches = list(_batches(found.inputs, settings.lines_per_element))
    read = beam.Create(batches).with_output_types(RawBatch)
    return run_inputs(settings, read, len(found.inputs), f"replay of {found.selected} "
                      "dead letter(s)")


def write_jsonl(found: ReplaySet, path: Path) -> int:
    """The originals, one per line (inputs holding a newline cannot be lines: skipped)."""
    n = 0
    with open(path, "wb") as f:
        for raw in found.inputs:
            if b"\n" in raw.payload or b"\r" in raw.payload:
                found.missing["holds a newline (not a JSON line)"] += 1
                continue
            f.write(raw.payload + b"\n")
            n += 1
    return n


def send_to_kafka(found: ReplaySet, url: str) -> int:
    """Publish the originals to the topic of `url`, each marked with the position it replays."""
    target = parse_kafka_url(url, single_topic=True, allow_group=False)
    stats = publish_replays(target.bootstrap, target.topics[0],
                            {raw.replay_of or raw.position.ref: (raw.key, raw.payload)
                             for raw in found.inputs})
    return stats.sent
