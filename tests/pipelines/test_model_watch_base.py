"""Hot swap and the base encoder: a running job's preprocessing (the base's tokenizer, the
preprocessing settings) is fixed when it starts, so a promoted version that reads texts
differently is refused and the running model kept; one on the same base is swapped in.

Runs on tiny artifacts over the tiny encoders of tests/tiny_encoders.py (no services)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from docstream.pipelines.handler import DocstreamModelHandler
from docstream.pipelines.model_watch import Located, ModelWatch
from tests.tiny_encoders import head_artifact


def test_swap_needs_the_same_base_tokenizer(tiny_encoders: Callable[[str], Path],
                                            tmp_path: Path) -> None:
    running = head_artifact(tiny_encoders("bert"), tmp_path / "v1", version="1")
    other_base = head_artifact(tiny_encoders("roberta"), tmp_path / "v2", version="2")
    same_base = head_artifact(tiny_encoders("bert"), tmp_path / "v3", version="3")
    where = {"path": str(other_base)}
    watch = ModelWatch(lambda: Located(where["path"], f"tiny@{where['path'][-1]}"),
                       interval_s=0.0)
    handler = DocstreamModelHandler(str(running), device="cpu", watch=watch)
    model = handler.load_model()

    handler._maybe_switch(model)
    assert model.ref.version == "1" and handler.model_dir == str(running)
    assert str(other_base) in watch._refused

    where["path"] = str(same_base)
    handler._maybe_switch(model)
    assert model.ref.version == "3" and handler.model_dir == str(same_base)
