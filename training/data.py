"""Labelled JSONL data: reading, label order, splits and a stratified hold-out.

A data file has one JSON object per line. The fields that hold the text, the label and the
split are configurable (`--text-field`, `--label-field`, `--split-field`); a `title` field
and a `kind` field (`news`/`social`) are used when present, as `docstream run` does.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from docstream.errors import ConfigError
from docstream.model.artifact import sha256_file
from docstream.preprocess.preprocessor import RawText

Kind = Literal["news", "social"]


@dataclass(frozen=True, slots=True)
class Row:
    """One labelled example.

    Attributes:
        line: 1-based line number in the data file.
        text: the body text.
        label: the label as a string.
        split: the row's split name, or None when the file has no split field.
        title: an optional title, prefixed to the text by preprocessing.
        social: whether social-media cleaning (URLs, mentions, hashtags) applies.
        fields: the whole JSON object, for slicing by any field.
    """

    line: int
    text: str
    label: str
    split: str | None
    title: str | None = None
    social: bool = False
    fields: dict[str, Any] = field(default_factory=dict, repr=False)

    def raw_text(self) -> RawText:
        """The preprocessing input for this row."""
        return RawText(text=self.text, title=self.title, social=self.social)


@dataclass(frozen=True, slots=True)
class DataFile:
    """A read data file.

    Attributes:
        path: where it was read from.
        sha256: hex digest of the file's bytes.
        rows: all rows, in file order.
        split_counts: number of rows per split name ("" for rows without a split).
    """

    path: Path
    sha256: str
    rows: list[Row]
    split_counts: dict[str, int]

    def split(self, name: str | None) -> list[Row]:
        """Rows of split `name`; every row when `name` is None or the file has no splits.

        Raises:
            ConfigError: the file has splits but none called `name`.
        """
        if name is None or set(self.split_counts) == {""}:
            return list(self.rows)
        rows = [r for r in self.rows if r.split == name]
        if not rows:
            have = ", ".join(sorted(s or "(none)" for s in self.split_counts))
            raise ConfigError(f"{self.path} has no rows in split {name!r}; its splits are: {have}")
        return rows

    def has_split(self, name: str) -> bool:
        """Whether any row belongs to split `name`."""
        return self.split_counts.get(name, 0) > 0


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


def text_objects(path: Path, text_field: str, what: str) -> Iterator[tuple[int, dict, str]]:
    """(line number, object, text) of each non-blank line of a JSON Lines file.

    Raises:
        ConfigError: the file is missing, a line is not a JSON object, or it lacks a string
            `text_field` (named with its line, and how to choose another field).
    """
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}:{n}: not valid JSON ({e.msg})") from e
            if not isinstance(obj, dict):
                raise ConfigError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
            text = obj.get(text_field)
            if not isinstance(text, str):
                raise ConfigError(
                    f"{path}:{n}: no string field {text_field!r} (choose it with --text-field)"
                )
            yield n, obj, text


def read_data(
    path: str | Path,
    *,
    text_field: str = "text",
    label_field: str = "label",
    split_field: str = "split",
    title_field: str | None = "title",
    kind: Kind | None = None,
) -> DataFile:
    """Read a labelled JSONL file.

    Args:
        path: the JSONL file.
        text_field: field holding the text.
        label_field: field holding the label (any JSON scalar; kept as a string).
        split_field: field holding the split name; rows without it have split None.
        title_field: optional field holding a title; None to ignore titles.
        kind: force `news` or `social` cleaning; None reads each row's `kind` field
            (missing means news).

    Returns:
        The rows, the file's sha256 and the row count per split.

    Raises:
        ConfigError: the file is missing, a line is not a JSON object, or a row lacks the
            text or label field.
    """
    path = Path(path)
    rows: list[Row] = []
    for n, obj, text in text_objects(path, text_field, "data file"):
        label = obj.get(label_field)
        if label is None or isinstance(label, dict | list):
            raise ConfigError(
                f"{path}:{n}: no scalar field {label_field!r} (choose it with --label-field)"
            )
        row_kind = kind or obj.get("kind") or "news"
        rows.append(
            Row(
                line=n,
                text=text,
                label=str(label),
                split=_opt_str(obj.get(split_field)),
                title=_opt_str(obj.get(title_field)) if title_field else None,
                social=row_kind == "social",
                fields=obj,
            )
        )
    if not rows:
        raise ConfigError(f"data file {path} has no rows")
    counts = Counter(r.split or "" for r in rows)
    return DataFile(path=path, sha256=sha256_file(path), rows=rows, split_counts=dict(counts))


def label_order(rows: Sequence[Row], given: Sequence[str] | None = None) -> list[str]:
    """The model's label list: `given` if set (it must cover the data), else sorted labels.

    Raises:
        ConfigError: `given` misses labels present in the data, repeats one, or there are
            fewer than two labels.
    """
    present = sorted({r.label for r in rows})
    if given:
        labels = [str(x) for x in given]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"--labels repeats a label: {labels}")
        missing = [lab for lab in present if lab not in labels]
        if missing:
            raise ConfigError(f"the data has labels not in --labels: {missing}")
    else:
        labels = present
    if len(labels) < 2:
        raise ConfigError(f"a classifier needs at least 2 labels; the data has {labels}")
    return labels


def stratified_order(rows: Sequence[Row], seed: int) -> list[Row]:
    """The rows in a seeded order in which every prefix keeps the label proportions.

    Each label's rows are shuffled; row i of a label with n rows gets the key (i + 0.5) / n,
    and rows are sorted by key, so taking the first k rows takes about k * n / N of each
    label.
    """
    rng = random.Random(seed)
    by_label: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_label[r.label].append(r)
    keyed: list[tuple[float, str, int, Row]] = []
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        n = len(group)
        keyed += [((i + 0.5) / n, label, i, r) for i, r in enumerate(group)]
    keyed.sort(key=lambda t: (t[0], t[1], t[2]))
    return [t[3] for t in keyed]


def sample_rows(rows: Sequence[Row], max_rows: int | None, seed: int) -> list[Row]:
    """At most `max_rows` rows, a seeded stratified sample, in file order."""
    if max_rows is None or max_rows >= len(rows):
        return list(rows)
    if max_rows < 1:
        raise ConfigError(f"--max-rows must be >= 1, got {max_rows}")
    picked = stratified_order(rows, seed)[:max_rows]
    return sorted(picked, key=lambda r: r.line)


def holdout(rows: Sequence[Row], fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """Split rows into (train, val) with a seeded, stratified `fraction` held out.

    Raises:
        ConfigError: the fraction is outside (0, 0.5] or leaves an empty side.
    """
    if not 0.0 < fraction <= 0.5:
        raise ConfigError(f"--val-fraction must be in (0, 0.5], got {fraction}")
    k = round(len(rows) * fraction)
    if k < 1 or k >= len(rows):
        raise ConfigError(
            f"holding out {fraction:.0%} of {len(rows)} rows leaves an empty side; "
            "use more rows or a `val` split"
        )
    order = stratified_order(rows, seed + 7919)
    val = sorted(order[:k], key=lambda r: r.line)
    train = sorted(order[k:], key=lambda r: r.line)
    return train, val


def field_value(row: Row, name: str) -> str:
    """A row's value for slicing: a top-level field, else a `metadata` field.

    `metadata.x` names a metadata field explicitly. Missing values read "(missing)".
    """
    obj = row.fields
    if name.startswith("metadata."):
        meta = obj.get("metadata")
        value = meta.get(name.removeprefix("metadata.")) if isinstance(meta, dict) else None
    elif name in obj:
        value = obj[name]
    else:
        meta = obj.get("metadata")
        value = meta.get(name) if isinstance(meta, dict) else None
    if value is None:
        return "(missing)"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)
