"""Policies: the packaged files, what a bad one says (one line), the key rule, the wheel."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from docstream.cli import main
from docstream.privacy.policy import (
    KEY_ENV,
    NER_TYPES,
    PATTERN_TYPES,
    PolicyError,
    load_policy,
    packaged_policies,
    policy_key,
)
from docstream.privacy.redact import IdentityRedactor, redactor_for
from tests.privacy.conftest import TEST_KEY

REPO = Path(__file__).resolve().parents[2]


def test_the_default_policy_is_versioned_and_covers_every_type() -> None:
    policy = load_policy("default")
    assert policy.label == "default@1"
    assert set(policy.operators) == set(PATTERN_TYPES) | set(NER_TYPES)
    assert policy.identifiers == "keep" and policy.ner == "with_entities"
    assert not policy.needs_key  # the default runs without any configuration
    assert {"default", "strict"} <= set(packaged_policies())
    assert load_policy("strict").needs_key


def test_off_is_the_identity() -> None:
    assert isinstance(redactor_for("off"), IdentityRedactor)
    assert redactor_for("off").name == "off"


@pytest.mark.parametrize(("content", "says"), [
    ("{not json", "is not JSON"),
    (json.dumps({"name": "x", "version": 0, "operators": {}}), "version"),
    (json.dumps({"name": "x", "version": 1, "operators": {"NAME": {"operator": "replace"}}}),
     "unknown entity type(s) NAME"),
    (json.dumps({"name": "x", "version": 1,
                 "operators": {"URL": {"operator": "shred"}}}), "operators.URL.operator"),
])
def test_a_bad_policy_file_is_one_line(tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(PolicyError) as e:
        load_policy(str(path))
    assert says in str(e.value) and "\n" not in str(e.value)


def test_a_missing_policy_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="default, strict, or off"):
        load_policy(str(tmp_path / "nope.json"))


def test_hashing_needs_a_key_of_16_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    strict = load_policy("strict")
    with pytest.raises(PolicyError, match=rf"\${KEY_ENV} is not set"):
        policy_key(strict)
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(PolicyError, match="shorter than 16"):
        policy_key(strict)
    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    assert policy_key(strict) == TEST_KEY.encode()
    assert policy_key(load_policy("default")) is None


def test_run_refuses_a_hashing_policy_without_key_before_it_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "x.db"
    code = main(["run", "--source", str(tmp_path / "none.jsonl"), "--sink", f"sqlite:///{db}",
                 "--model", "noop", "--pii-policy", "strict"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"docstream run: error: PII policy strict@1 hashes values but ${KEY_ENV} is "
                   "not set; set it to a secret of at least 16 characters (keep the same one "
                   "across runs so that hashes stay joinable)"]
    assert not db.exists()  # nothing started


def test_the_policies_ship_in_the_wheel() -> None:
    """pyproject.toml's package-data carries privacy/policies/*.json (the wheel itself is
    built and read by tests/test_packaging.py)."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["docstream.privacy"]
    shipped = {p.name for g in globs for p in (REPO / "privacy").glob(g)}
    assert shipped == {p.name for p in (REPO / "privacy" / "policies").glob("*.json")}
    assert {"default.json", "strict.json"} <= shipped
