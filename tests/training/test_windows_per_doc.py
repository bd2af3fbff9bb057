"""--windows-per-doc: each epoch trains on at most K windows of each long document, drawn
afresh per epoch; the run still validates and writes on every window."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from docstream.model.loader import load_model
from docstream.training.train import TrainConfig, train
from tests.news_posts import LABELS, write_labelled

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


def _long_documents(src: Path, out: Path, per_doc: int = 12) -> Path:
    """Documents of `per_doc` same-label generated posts each: several windows apiece."""
    rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines()]
    docs: list[dict[str, str]] = []
    for split in ("train", "test"):
        for label in LABELS:
            texts = [r["text"] for r in rows if r["split"] == split and r["label"] == label]
            for i in range(0, len(texts) - per_doc + 1, per_doc):
                docs.append({"id": f"{split}-{label}-{i}", "split": split, "label": label,
                             "text": " ".join(texts[i : i + per_doc])})
    out.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return out


def test_epochs_draw_k_windows_per_document(tiny_encoders: Callable[[str], Path],
                                            tmp_path: Path) -> None:
    data = _long_documents(write_labelled(tmp_path / "posts.jsonl"), tmp_path / "long.jsonl")
    notes: list[str] = []
    config = TrainConfig(data=data, out=tmp_path / "model", mode="lora", labels=LABELS,
                         base=str(tiny_encoders("bert")), epochs=2, windows_per_doc=1,
                         val_fraction=0.2, progress=False, limit_minutes=None)
    result = train(config, note=notes.append)

    line = next(n for n in notes if n.startswith("epochs: at most 1 window"))
    used, total = (int(x.replace(",", "")) for x in re.findall(r"\(([\d,]+) of ([\d,]+)",
                                                                 line)[0])
    data_line = next(n for n in notes if n.startswith("data: "))
    n_docs = int(re.match(r"data: (\d+) train docs", data_line).group(1))  # type: ignore[union-attr]
    assert used == n_docs < total  # one window per document, of several each
    assert result.manifest.training.hyperparameters["windows_per_doc"] == 1
    loaded = load_model(tmp_path / "model")  # a complete artifact, as `run` loads it
    assert loaded.manifest.labels == LABELS


@pytest.mark.parametrize("bad", [0, -1])
def test_fewer_than_one_window_is_refused(tmp_path: Path, bad: int) -> None:
    with pytest.raises(ValidationError, match="windows_per_doc"):
        TrainConfig(data=tmp_path / "d.jsonl", out=tmp_path / "m", windows_per_doc=bad)
