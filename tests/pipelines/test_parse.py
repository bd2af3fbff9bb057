from __future__ import annotations

import json
from pathlib import Path

import pytest

from docstream.pipelines.file_source import expand_sources, iter_lines, read_batches
from docstream.pipelines.parse import MAX_PAYLOAD_BYTES, parse_raw
from docstream.pipelines.records import ParsedItem, RawInput
from docstream.schemas.envelope import FailedRecord
from docstream.schemas.position import InputPosition

POS = InputPosition(kind="file", file="in.jsonl", line=1)


def dead(payload: bytes) -> FailedRecord:
    out = parse_raw(RawInput(POS, payload))
    assert isinstance(out, FailedRecord), out
    assert out.dead_letter.error  # always a readable reason
    assert out.dead_letter.payload == payload[: len(out.dead_letter.payload)]
    return out


def test_good_post_parses() -> None:
    out = parse_raw(RawInput(POS, json.dumps({"id": "a", "text": "héllo"}).encode()))
    assert isinstance(out, ParsedItem)
    assert out.post.text == "héllo" and len(out.sha256) == 64


@pytest.mark.parametrize(
    "payload, stage, reason",
    [
        (b'{"id": "a", "text": "x"', "parse", "invalid_json"),
        (b"\xff\xfe{}", "decode", "invalid_utf8"),
        (b'{"id": "a", "text": "caf\xe9"}', "decode", "invalid_utf8"),
        (b"\x00\x01\x02binary\x00", "decode", "binary"),
        (b"[1, 2]", "validate", "schema"),
        (b'"just a string"', "validate", "schema"),
        (b'{"id": "a"}', "validate", "schema"),
        (b'{"id": "a", "text": ""}', "validate", "empty_text"),
        (b'{"id": "a", "text": "x", "kind": "blog"}', "validate", "schema"),
        (json.dumps({"id": "a", "text": "x" * 100_001}).encode(), "validate", "oversize"),
    ],
)
def test_bad_inputs_become_dead_letters(payload: bytes, stage: str, reason: str) -> None:
    out = dead(payload)
    assert (out.dead_letter.stage, out.dead_letter.reason) == (stage, reason)


def test_schema_error_keeps_doc_id_and_names_field() -> None:
    out = dead(b'{"id": "p9", "source": "wire", "text": "x", "created_at": "yesterday"}')
    assert out.dead_letter.doc_id == "p9" and out.dead_letter.source == "wire"
    assert "created_at" in out.dead_letter.error


def test_gigantic_payload_is_refused_before_decoding() -> None:
    out = dead(b'{"id": "a", "text": "' + b"x" * (MAX_PAYLOAD_BYTES + 10) + b'"}')
    assert out.dead_letter.reason == "oversize"
    assert len(out.dead_letter.payload) <= 4096  # the stored copy is truncated


def test_file_reader_numbers_lines_and_cuts_gigantic_ones(tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    f.write_bytes(b'{"id": "1", "text": "a"}\n\n' + b"y" * (MAX_PAYLOAD_BYTES + 5000) + b'\n'
                  b'{"id": "2", "text": "b"}\r\n')
    lines = list(iter_lines(str(f)))
    assert [n for n, _ in lines] == [1, 3, 4]
    assert len(lines[1][1]) == MAX_PAYLOAD_BYTES + 1
    assert lines[2][1] == b'{"id": "2", "text": "b"}'
    batches = list(read_batches(str(f), lines_per_element=2))
    assert [len(b.inputs) for b in batches] == [2, 1]
    assert batches[1].inputs[0].position.ref == f"file:{f}:4"


def test_expand_sources(tmp_path: Path) -> None:
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / name).write_text("{}\n")
    assert len(expand_sources([str(tmp_path)])) == 2
    assert len(expand_sources([str(tmp_path / "*.jsonl"), str(tmp_path / "a.jsonl")])) == 2
    from docstream.errors import ConfigError

    with pytest.raises(ConfigError, match="no such file"):
        expand_sources([str(tmp_path / "missing.jsonl")])
    with pytest.raises(ConfigError, match="matches no file"):
        expand_sources([str(tmp_path / "*.csv")])
