"""JSON Lines files as batches of raw inputs (one Beam element per batch of lines)."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import apache_beam as beam

from docstream.errors import ConfigError
from docstream.schemas.position import InputPosition

from .parse import MAX_PAYLOAD_BYTES, UTF8_BOM
from .records import RawBatch, RawInput

LINES_PER_ELEMENT = 256


def expand_sources(sources: Sequence[str]) -> list[str]:
    """Files named by paths, globs or directories (their *.jsonl), absolute and sorted."""
    files: list[str] = []
    for src in sources:
        if any(ch in src for ch in "*?["):
            matched = sorted(glob.glob(src, recursive=True))
            if not matched:
                raise ConfigError(f"--source {src!r} matches no file")
            files += matched
        elif os.path.isdir(src):
            found = sorted(str(p) for p in Path(src).rglob("*.jsonl"))
            if not found:
                raise ConfigError(f"--source {src!r} is a directory with no *.jsonl file")
            files += found
        elif os.path.isfile(src):
            files.append(src)
        else:
            raise ConfigError(f"--source {src!r}: no such file")
    return sorted({os.path.abspath(f) for f in files})


def iter_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes without the newline) for non-blank lines.

    A line longer than the payload limit is cut at limit+1 bytes and the rest skipped, so a
    gigantic line never has to fit in memory; parsing then refuses it as oversize. A UTF-8
    byte order mark at the start of the file (editors on Windows write one) is dropped.
    """
    with open(path, "rb") as f:
        number = 0
        while True:
            line = f.readline(MAX_PAYLOAD_BYTES + 1)
            if not line:
                return
            number += 1
            rest_blank = True  # a line is blank only if ALL of it is (not just its head)
            if len(line) > MAX_PAYLOAD_BYTES and not line.endswith(b"\n"):
                while True:  # skip the rest of this line
                    rest = f.readline(1 << 20)
                    rest_blank = rest_blank and not rest.strip()
                    if not rest or rest.endswith(b"\n"):
                        break
            if number == 1 and line.startswith(UTF8_BOM) and len(line) <= MAX_PAYLOAD_BYTES:
                line = line[len(UTF8_BOM):]
            body = line.rstrip(b"\r\n")
            if body.strip() or not rest_blank:
                yield number, body


def count_lines(paths: Sequence[str]) -> int:
    total = 0
    for p in paths:
        with open(p, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                total += block.count(b"\n")
    return total


def read_batches(path: str, lines_per_element: int = LINES_PER_ELEMENT) -> Iterator[RawBatch]:
    batch: list[RawInput] = []
    for number, body in iter_lines(path):
        batch.append(RawInput(InputPosition(kind="file", file=path, line=number), body))
        if len(batch) >= lines_per_element:
            yield RawBatch(batch)
            batch = []
    if batch:
        yield RawBatch(batch)


class ReadJsonLines(beam.PTransform):
    """PCollection[RawBatch] from JSON Lines files."""

    def __init__(self, files: Sequence[str], lines_per_element: int = LINES_PER_ELEMENT) -> None:
        super().__init__()
        self.files = list(files)
        self.lines_per_element = lines_per_element

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        n = self.lines_per_element
        return (
            pbegin
            | "Files" >> beam.Create(self.files)
            | "Lines" >> beam.FlatMap(read_batches, lines_per_element=n).with_output_types(RawBatch)
        )
