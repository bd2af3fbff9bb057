"""DOCSTREAM_FAULT: the kill point used by the streaming crash tests."""

from __future__ import annotations

import signal
import subprocess
import sys

import psutil
import pytest

from docstream.pipelines.sink import fault_hook


@pytest.mark.parametrize("spec", ["after_results", "after_results:x", "after_results:0",
                                  "before_marks:1", ":3"])
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="expected POINT:N"):
        fault_hook(spec)


def test_no_spec_no_hook() -> None:
    assert fault_hook(None) is None and fault_hook("") is None


def test_hook_kills_its_whole_process_group_at_the_nth_batch() -> None:
    """Run in a fresh session: the SIGKILL reaches this child and its own child alike."""
    code = (
        "import subprocess, sys\n"
        "from pipelines.sink import fault_hook\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "h = fault_hook('after_results:2')\n"
        "h('other_point'); h('after_results'); print('first batch survived', flush=True)\n"
        "h('after_results'); print('second batch survived', flush=True)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, start_new_session=True)
    lines = proc.stdout.splitlines()
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert lines[1:] == ["first batch survived"]
    # the grandchild was in the same process group: killed too (gone, or a zombie until
    # its new parent reaps it)
    try:
        status = psutil.Process(int(lines[0])).status()
    except psutil.NoSuchProcess:
        status = "gone"
    assert status in ("gone", psutil.STATUS_ZOMBIE)
