"""Run a command in a subprocess and measure its wall time and peak tree RSS.

The sampler polls the process and all its descendants every 0.2 s and sums their resident
set sizes; the peak of that sum is the row's memory figure. (Pages shared between the
processes, forked copies and the shared libraries every Python+torch process maps, are counted
once per process, so the figure is an upper bound.) With `pss=True` it also sums the
processes' proportional set sizes (shared pages split between their users): the tree's real
footprint, reported beside the RSS sum; read at the RSS peaks only (PSS_GROWTH), since
reading it is expensive.

`run_measured` also measures contention: the CPU time the rest of the machine used while the
command ran (system-wide busy time minus the command's own, from its rusage), as average
cores (`foreign_cores`).
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import psutil

SAMPLE_S = 0.2
#: PSS costs the kernel a page-table walk (~10 ms for a torch process, 15% of a core at
#: SAMPLE_S): it is read only when the RSS sum has grown this much since the last PSS read,
#: and at most every PSS_MIN_GAP_S, i.e. at the RSS peaks, where the PSS peak is.
PSS_GROWTH = 1.02
PSS_MIN_GAP_S = 1.0


def process_tree(pid: int) -> list[psutil.Process]:
    """The process `pid` and all its descendants; [] once it is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


class TreeSampler:
    """Samples the summed RSS of a process and its descendants in a background thread."""

    def __init__(self, pid: int, interval_s: float = SAMPLE_S, pss: bool = False) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.pss = pss
        self.peak_bytes = 0
        self.peak_pss_bytes = 0
        self._pss_at = -PSS_MIN_GAP_S
        self._pss_at_rss = 0
        self.samples = 0
        self.max_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"rss-{pid}", daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def sample(self) -> int:
        procs = process_tree(self.pid)
        if not procs:
            return 0
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                continue  # exited between listing and reading
        self.max_procs = max(self.max_procs, len(procs))
        now = time.monotonic()
        if (self.pss and total > PSS_GROWTH * self._pss_at_rss
                and now - self._pss_at >= PSS_MIN_GAP_S):
            self._pss_at, self._pss_at_rss = now, total
            pss = 0
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    pss += p.memory_full_info().pss
            self.peak_pss_bytes = max(self.peak_pss_bytes, pss)
        return total

    def _loop(self) -> None:
        while not self._stop.is_set():
            rss = self.sample()
            self.samples += 1
            self.peak_bytes = max(self.peak_bytes, rss)
            self._stop.wait(self.interval_s)

    @property
    def peak_mb(self) -> float:
        return round(self.peak_bytes / 2**20, 1)

    @property
    def peak_pss_mb(self) -> float | None:
        return round(self.peak_pss_bytes / 2**20, 1) if self.pss else None


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, idle and iowait left out)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def children_cpu_s() -> float:
    """CPU seconds of this process's finished, waited-for children and their descendants."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def foreign_cores(busy_s: float, own_s: float, wall_s: float) -> float:
    """Average cores the rest of the machine used over `wall_s`: busy minus our own CPU."""
    return round(max(0.0, busy_s - own_s) / wall_s, 2) if wall_s > 0 else 0.0


@dataclass
class Measured:
    rc: int
    wall_s: float
    peak_rss_mb: float
    max_procs: int
    stdout: str
    stderr: str
    timed_out: bool = False
    foreign_cores: float | None = None
    extra: dict = field(default_factory=dict)


def run_measured(cmd: Sequence[str], *, timeout_s: float, cwd: str | None = None,
                 env: dict[str, str] | None = None) -> Measured:
    """Run `cmd`, sampling its process tree's RSS; kill the tree on timeout."""
    busy0, own0 = busy_cpu_s(), children_cpu_s()
    self0 = time.process_time()
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    timed_out = False
    with TreeSampler(proc.pid) as sampler:
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_tree(proc.pid)
            out, err = proc.communicate()
    wall = time.perf_counter() - t0
    own = children_cpu_s() - own0 + time.process_time() - self0  # the row + this sampler
    return Measured(rc=proc.returncode, wall_s=wall,
                    peak_rss_mb=sampler.peak_mb, max_procs=sampler.max_procs,
                    stdout=out or "", stderr=err or "", timed_out=timed_out,
                    foreign_cores=foreign_cores(busy_cpu_s() - busy0, own, wall))


def kill_tree(pid: int) -> None:
    """Kill a process we started and all of its descendants (by pid, never by name)."""
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(procs, timeout=10)


def foreign_cpu(seconds: float = 1.0, exclude: set[int] | None = None) -> list[tuple[str, float]]:
    """Processes outside `exclude` (and outside this process's tree) using CPU right now:
    (short description, % of one core), busiest first."""
    me = psutil.Process()
    skip = {me.pid, *(p.pid for p in me.children(recursive=True)), *(exclude or set())}
    procs = []
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        if p.info["pid"] in skip:
            continue
        with contextlib.suppress(psutil.Error):
            p.cpu_percent(None)
            procs.append(p)
    time.sleep(seconds)
    busy = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            pct = p.cpu_percent(None)
            if pct >= 10:
                cmd = " ".join(p.info.get("cmdline") or [p.info["name"] or "?"])
                busy.append((f"{p.info['pid']} {cmd[:60]}", round(pct)))
    return sorted(busy, key=lambda x: -x[1])


def training_running() -> list[int]:
    """Pids of `docstream.cli train` processes (a training job contends for the CPU)."""
    pids = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = p.info.get("cmdline") or []
        if p.info["pid"] != os.getpid() and "docstream.cli" in cmd and "train" in cmd:
            pids.append(p.info["pid"])
    return pids
