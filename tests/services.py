"""The real services of the tests: `scripts/dev-services start` and where they listen.

`start` never installs anything; `scripts/dev-services install` does (apt-get, Maven). A
service that cannot start fails the test session loudly, never a skip.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "dev-services"
PG_HOST = os.environ.get("DOCSTREAM_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("DOCSTREAM_PG_PORT", "5432")
PG_ADMIN_URL = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/postgres"
KAFKA_HOST = os.environ.get("DOCSTREAM_KAFKA_HOST", "127.0.0.1")
KAFKA_PORT = os.environ.get("DOCSTREAM_KAFKA_PORT", "9092")
BOOTSTRAP = f"{KAFKA_HOST}:{KAFKA_PORT}"
INSTALL_HINT = ("if PostgreSQL, Java or the Kafka jars are not installed on this machine, run "
                "`scripts/dev-services install` once (`start` never installs anything)")


class ServiceError(RuntimeError):
    """scripts/dev-services failed."""


def dev_services(*args: str, timeout: float = 900) -> None:
    """Run scripts/dev-services ARGS; a failure raises ServiceError with its output, led by
    the script's own "run scripts/dev-services install" line when something is missing."""
    proc = subprocess.run([str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode == 0:
        return
    missing = [line for line in proc.stderr.splitlines() if "dev-services install" in line]
    if missing:
        reason = f": {missing[-1].strip()}"
    elif args and args[0] in ("start", "restart"):
        reason = f"; {INSTALL_HINT}"
    else:
        reason = ""
    raise ServiceError(f"scripts/dev-services {' '.join(args)} failed (exit {proc.returncode})"
                       f"{reason}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
