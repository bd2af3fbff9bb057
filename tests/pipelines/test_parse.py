from __future__ import annotations

import json
from pathlib import Path

import pytest

from docstream.pipelines.file_source import expand_sources, iter_lines, read_batches
from docstream.pipelines.json_guard import MAX_DEPTH, MAX_NUMBER_CHARS
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
        (b'{"id": "d", "text": ' + b"[" * 5000 + b"]" * 5000 + b"}", "parse", "too_deep"),
        (b'{"id": "n", "text": "x", "n": ' + b"9" * 5000 + b"}", "parse", "number_too_large"),
        (b'{"id": "n", "text": "x", "n": 1e999999}', "parse", "number_too_large"),
        (b'{"id": "n", "text": "x", "n": NaN}', "parse", "invalid_json"),
        (b'{"id": "a", "text": "x", "id": "b"}', "parse", "duplicate_key"),
        (b'{"id": "a\\u0000b", "text": "x"}', "validate", "forbidden_character"),
        (b'{"id": "a", "text": "x\\ud800"}', "validate", "forbidden_character"),
        (b'{"id": "a\\tb", "text": "x"}', "validate", "forbidden_character"),
        ("{}".encode("utf-16"), "decode", "invalid_utf8"),
    ],
)
def test_bad_inputs_become_dead_letters(payload: bytes, stage: str, reason: str) -> None:
    out = dead(payload)
    assert (out.dead_letter.stage, out.dead_letter.reason) == (stage, reason)


def test_schema_error_keeps_doc_id_and_names_field() -> None:
    out = dead(b'{"id": "p9", "source": "wire", "text": "x", "created_at": "yesterday"}')
    assert out.dead_letter.doc_id == "p9" and out.dead_letter.source == "wire"
    assert "created_at" in out.dead_letter.error


def test_limits_are_inclusive() -> None:
    nested = b"[" * (MAX_DEPTH - 2) + b"]" * (MAX_DEPTH - 2)  # inside the post and metadata
    number = b"1" * MAX_NUMBER_CHARS
    out = parse_raw(RawInput(POS, b'{"id": "a", "text": "x", "metadata": {"a": ' + nested
                             + b', "n": ' + number + b"}}"))
    assert isinstance(out, ParsedItem), out
    assert dead(b'{"id": "a", "text": "x", "metadata": {"a": [' + nested + b"]}}"
                ).dead_letter.reason == "too_deep"


def test_a_leading_utf8_bom_is_skipped() -> None:
    out = parse_raw(RawInput(POS, b'\xef\xbb\xbf{"id": "a", "text": "x"}'))
    assert isinstance(out, ParsedItem) and out.post.id == "a"
    assert out.raw.payload.startswith(b"\xef\xbb\xbf")  # the input is kept as it came


def test_unstorable_id_is_not_copied_into_the_dead_letter() -> None:
    out = dead(b'{"id": "a\\u0000b", "source": "w\\ud800", "text": "x"}')
    assert out.dead_letter.doc_id is None and out.dead_letter.source is None
    assert "U+0000" in out.dead_letter.error and "'id'" in out.dead_letter.error
    assert "\x00" not in out.dead_letter.error


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


def test_file_reader_drops_a_utf8_bom_on_the_first_line_only(tmp_path: Path) -> None:
    bom = b"\xef\xbb\xbf"
    f = tmp_path / "bom.jsonl"
    f.write_bytes(bom + b'{"id": "1", "text": "a"}\n' + bom + b'{"id": "2", "text": "b"}\n')
    lines = list(iter_lines(str(f)))
    assert lines == [(1, b'{"id": "1", "text": "a"}'), (2, bom + b'{"id": "2", "text": "b"}')]
    f.write_bytes(bom + b"\n" + b'{"id": "1", "text": "a"}\n')  # a BOM alone is a blank line
    assert [n for n, _ in iter_lines(str(f))] == [2]


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
