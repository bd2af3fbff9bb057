"""Privacy tests: a run leaves its policy in the environment (privacy.redact.activate) for the
store writers it starts; each test gets the environment back as it was."""

from __future__ import annotations

import pytest

from docstream.privacy.policy import KEY_ENV
from docstream.privacy.redact import ENTITIES_ENV, POLICY_ENV

TEST_KEY = "test-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def _pii_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (POLICY_ENV, ENTITIES_ENV, KEY_ENV):
        monkeypatch.setenv(name, "")  # records the value before, which teardown restores
        monkeypatch.delenv(name)
