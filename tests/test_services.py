"""tests/services.py: a service that cannot start fails loudly and names the install step."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import services


def fake_script(tmp_path: Path, stderr: str) -> Path:
    script = tmp_path / "dev-services"
    script.write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit 1\n", encoding="utf-8")
    script.chmod(0o755)
    return script


def test_missing_install_leads_the_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    line = "dev-services: kafka: no java on PATH; run scripts/dev-services install"
    monkeypatch.setattr(services, "SCRIPT", fake_script(tmp_path, line))
    with pytest.raises(services.ServiceError) as err:
        services.dev_services("start", "kafka")
    assert str(err.value).splitlines()[0].endswith(line)


def test_any_failed_start_names_the_install_step(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "SCRIPT", fake_script(tmp_path, "boom"))
    with pytest.raises(services.ServiceError, match=r"scripts/dev-services install") as err:
        services.dev_services("start", "postgres")
    assert "boom" in str(err.value)
