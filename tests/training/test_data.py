"""training.data: reading JSONL, label order, stratified sampling and hold-out."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from docstream.errors import ConfigError
from docstream.training.data import field_value, holdout, label_order, read_data, sample_rows


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    rows: list[dict[str, object]] = []
    for i in range(200):
        label = ["b", "a", "c", "a"][i % 4]  # a: 100, b: 50, c: 50
        rows.append({"id": f"r{i}", "body": f"row number {i}", "y": label,
                     "part": "train" if i < 160 else "test",
                     "metadata": {"source": f"s{i % 3}"}})
    return write_jsonl(tmp_path / "syn.jsonl", rows)


def test_read_data_fields_counts_and_sha(synthetic: Path) -> None:
    data = read_data(synthetic, text_field="body", label_field="y", split_field="part")
    assert len(data.rows) == 200
    assert data.split_counts == {"train": 160, "test": 40}
    assert data.sha256 == hashlib.sha256(synthetic.read_bytes()).hexdigest()
    assert data.rows[0].text == "row number 0" and data.rows[0].label == "b"
    assert len(data.split("test")) == 40


def test_read_data_errors_name_line_and_flag(tmp_path: Path, synthetic: Path) -> None:
    with pytest.raises(ConfigError, match="--text-field"):
        read_data(synthetic)  # the text is in "body", not "text"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "label": "a"}\nnot json\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.jsonl:2"):
        read_data(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        read_data(tmp_path / "missing.jsonl")
    data = read_data(synthetic, text_field="body", label_field="y", split_field="part")
    with pytest.raises(ConfigError, match="no rows in split 'val'"):
        data.split("val")


def test_label_order_sorted_or_given(synthetic: Path) -> None:
    rows = read_data(synthetic, text_field="body", label_field="y").rows
    assert label_order(rows) == ["a", "b", "c"]
    assert label_order(rows, ["c", "a", "b"]) == ["c", "a", "b"]
    with pytest.raises(ConfigError, match="not in --labels"):
        label_order(rows, ["a", "b"])


def test_holdout_is_stratified_seeded_and_disjoint(synthetic: Path) -> None:
    rows = read_data(synthetic, text_field="body", label_field="y").rows
    train, val = holdout(rows, 0.1, seed=3)
    assert len(val) == 20 and len(train) == 180
    assert {r.line for r in train}.isdisjoint(r.line for r in val)
    assert Counter(r.label for r in val) == {"a": 10, "b": 5, "c": 5}
    _, val2 = holdout(rows, 0.1, seed=3)
    assert [r.line for r in val2] == [r.line for r in val]
    _, other = holdout(rows, 0.1, seed=4)
    assert [r.line for r in other] != [r.line for r in val]


def test_sample_rows_keeps_proportions(synthetic: Path) -> None:
    rows = read_data(synthetic, text_field="body", label_field="y").rows
    picked = sample_rows(rows, 40, seed=0)
    assert len(picked) == 40
    assert Counter(r.label for r in picked) == {"a": 20, "b": 10, "c": 10}
    assert sample_rows(rows, None, seed=0) == rows


def test_field_value_top_level_and_metadata(synthetic: Path) -> None:
    row = read_data(synthetic, text_field="body", label_field="y").rows[4]
    assert field_value(row, "part") == "train"
    assert field_value(row, "source") == "s1"
    assert field_value(row, "metadata.source") == "s1"
    assert field_value(row, "nothing") == "(missing)"
