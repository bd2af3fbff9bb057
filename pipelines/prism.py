"""Beam's Prism runner binary: finding it (never building it) and stopping the one we started.

Prism is built once, outside the job, by `scripts/build-prism` (Go, from the module proxy, with
one patch). The job only looks for the binary: the explicit option, then $DOCSTREAM_PRISM, then
build-prism's cache, then `prism` on PATH; missing, it fails with a ConfigError naming both
remedies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import apache_beam
import psutil

from docstream.errors import ConfigError

PRISM_ENV = "DOCSTREAM_PRISM"
CACHE_ENV = "DOCSTREAM_CACHE"
#: scripts/build-prism's PATCH_LEVEL: keep the two equal (the cache path contains it).
PATCH_LEVEL = "docstream1"


def cached_prism(beam_version: str | None = None) -> Path:
    """Where scripts/build-prism leaves the binary for the installed Beam version:
    ${DOCSTREAM_CACHE:-$HOME/.cache/docstream}/prism/v<beam version>-<patch level>/prism."""
    version = (beam_version or apache_beam.__version__).removeprefix("v")
    cache = os.environ.get(CACHE_ENV) or str(Path.home() / ".cache" / "docstream")
    return Path(cache) / "prism" / f"v{version}-{PATCH_LEVEL}" / "prism"


def _executable(path: str | Path) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_prism(explicit: str | None = None) -> str:
    """The Prism binary: `explicit`, else $DOCSTREAM_PRISM, else scripts/build-prism's cache,
    else `prism` on PATH. A named binary that is not executable, or none found, is a ConfigError."""
    for candidate, origin in ((explicit, "--prism_location"), (os.environ.get(PRISM_ENV), PRISM_ENV)):
        if candidate:
            if not _executable(candidate):
                raise ConfigError(f"{origin}={candidate!r} is not an executable Prism binary; "
                                  "build one with scripts/build-prism and name its path")
            return candidate
    cached = cached_prism()
    if _executable(cached):
        return str(cached)
    on_path = shutil.which("prism")
    if on_path:
        return on_path
    raise ConfigError(f"no Prism runner binary (looked in {PRISM_ENV}, {cached} and PATH): build it "
                      f"with scripts/build-prism, or set {PRISM_ENV} to a Prism binary")


def stop_prism() -> None:
    """End the Prism process this job started (our child), now rather than at exit: it
    ignores SIGINT (see shutdown.StopSignals.run), which Beam's exit hook would send five
    times, 1 s apart."""
    try:
        children = psutil.Process().children()
    except psutil.Error:
        return
    mine = [c for c in children if _is_prism(c)]
    for c in mine:
        with contextlib.suppress(psutil.Error):
            c.terminate()
    _, alive = psutil.wait_procs(mine, timeout=5)
    for c in alive:
        with contextlib.suppress(psutil.Error):
            c.kill()


def _is_prism(proc: psutil.Process) -> bool:
    try:
        cmd = proc.cmdline()
    except psutil.Error:
        return False
    return bool(cmd) and os.path.basename(cmd[0]).startswith("prism") and "--job_port" in cmd
