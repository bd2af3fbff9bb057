"""build_classifier: the one way from an artifact (manifest + module) to a DocClassifier."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from docstream.model import predictor as pred_mod
from docstream.model.build import build_classifier
from docstream.model.bundled import bundled_model_dir
from docstream.model.classify import ClassifierSpec, DocClassifier
from docstream.model.loader import LoadedModel, load_model
from docstream.model.predictor import Predictor
from docstream.model.tokenizer import load_tokenizer

from .test_predictor import TinyClassifier

REPO = Path(__file__).resolve().parents[2]
SPORTS = ("The striker scored twice in the second half as the home team beat the league "
          "leaders 3-1 to reach the cup final.")
BUSINESS = "Shares of the bank fell 4% after quarterly profit missed analysts' forecasts."


@pytest.fixture(scope="module")
def bundled() -> LoadedModel:
    return load_model(bundled_model_dir())


def one_chunk(text: str) -> list[list[int]]:
    """A short text as one chunk: [CLS] wordpieces [SEP], as preprocess.chunk makes it."""
    ids = load_tokenizer().encode(text, add_special_tokens=False).ids
    return [[101, *ids, 102]]


def test_bundled_model_fp32_classifies_and_flags_by_threshold(bundled: LoadedModel) -> None:
    docs = [one_chunk(SPORTS), one_chunk(BUSINESS)]
    clf = build_classifier(bundled.manifest, bundled.module, device="cpu", precision="fp32")
    assert clf.predictor.precision == "fp32" and clf.predictor.device.type == "cpu"
    assert clf.review_threshold == bundled.manifest.review_threshold
    preds = clf.classify(docs)
    assert [p.label for p in preds] == ["Sports", "Business"]
    score = preds[0].score
    above = build_classifier(bundled.manifest, bundled.module, device="cpu", precision="fp32",
                             review_threshold=min(score + 1e-3, 1.0))
    below = build_classifier(bundled.manifest, bundled.module, device="cpu", precision="fp32",
                             review_threshold=score - 1e-3)
    assert above.classify(docs[:1])[0].needs_review
    assert not below.classify(docs[:1])[0].needs_review


def test_the_builder_equals_the_hand_assembled_classifier(bundled: LoadedModel) -> None:
    docs = [one_chunk(SPORTS), one_chunk(BUSINESS) + one_chunk(SPORTS)]
    built = build_classifier(bundled.manifest, bundled.module, device="cpu", precision="fp32")
    by_hand = DocClassifier(ClassifierSpec.from_manifest(bundled.manifest),
                            Predictor(bundled.module, device="cpu", precision="fp32"))
    np.testing.assert_allclose(built.probabilities(docs), by_hand.probabilities(docs))
    assert built.spec == by_hand.spec


def test_auto_picks_only_among_the_artifacts_checked_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pred_mod, "_cpu_flags", lambda: frozenset({"amx_bf16", "avx512_bf16"}))
    labels = ("x", "y", "z")
    fp32_only = build_classifier(ClassifierSpec(labels=labels, precision_ok=("fp32",)),
                                 TinyClassifier(), device="cpu")
    assert fp32_only.predictor.precision == "fp32"
    bf16_ok = build_classifier(ClassifierSpec(labels=labels, precision_ok=("fp32", "bf16")),
                               TinyClassifier(), device="cpu")
    assert bf16_ok.predictor.precision == "bf16"


def test_token_budget_and_batch_size_reach_the_predictor() -> None:
    clf = build_classifier(ClassifierSpec(labels=("x", "y", "z")), TinyClassifier(), device="cpu",
                           precision="fp32", max_tokens_per_batch=128, max_batch_size=8)
    assert (clf.predictor.max_tokens, clf.predictor.max_batch_size) == (128, 8)
    assert clf.classify([[[1, 2, 3]]])[0].label in {"x", "y", "z"}


def test_int8_on_a_gpu_is_refused_by_the_builder_too() -> None:
    with pytest.raises(ValueError, match="CPU only"):
        build_classifier(ClassifierSpec(labels=("x", "y", "z")), TinyClassifier(),
                         device=torch.device("cuda"), precision="int8")


def test_classify_and_build_import_from_a_plain_checkout_without_pydantic() -> None:
    """bench/gpu.py's box has no pydantic: model.build and model.classify must not need it."""
    code = textwrap.dedent(f"""
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("pydantic", "apache_beam", "spacy", "sqlalchemy"):
                    raise ModuleNotFoundError(f"blocked: {{name}}", name=name)
                return None

        sys.meta_path.insert(0, Block())
        sys.path.insert(0, {str(REPO)!r})
        from model.build import build_classifier
        from model.classify import ClassifierSpec, DocClassifier
        assert "pydantic" not in sys.modules
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"
