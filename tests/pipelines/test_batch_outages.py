"""The batch job and a PostgreSQL outage (real server, the job as a subprocess): a restart
mid-run is waited out; an outage longer than --store-wait-secs stops the job with one line
that says how much was written, and a rerun with the same run id finishes without doubling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import REPO
from tests.stream_helpers import count_results, dev_services, scalar, wait_for

N = 12_000


@pytest.fixture(scope="module")
def posts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.news_posts import post_texts

    path = tmp_path_factory.mktemp("batch-outage") / "posts.jsonl"
    path.write_text("".join(json.dumps({"id": f"b{i}", "text": t}) + "\n"
                            for i, t in enumerate(post_texts(N, seed=21))))
    return path


def start(src: Path, db_url: str, run_id: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "docstream.cli", "run", "--source", str(src), "--sink", db_url,
         "--model", "noop", "--run-id", run_id, "--no-progress", *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def audit_count(db_url: str, run_id: str) -> int:
    return int(scalar(db_url, "select count(*) from audit_log where run_id = :r", r=run_id) or 0)


def test_a_restart_mid_run_is_waited_out(posts_file: Path, pg_url: str) -> None:
    job = start(posts_file, pg_url, "restart")
    try:
        wait_for(lambda: count_results(pg_url) >= 1000 or job.poll() is not None, 180,
                 "1,000 results")
        assert job.poll() is None, job.communicate()
        dev_services("restart", "postgres")
        out, err = job.communicate(timeout=300)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, err[-3000:]
    assert "the store is unavailable" in err and "the store is back after" in err, err[-3000:]
    assert count_results(pg_url) == N
    assert audit_count(pg_url, "restart") == N
    assert f"{N:,} inputs" in out


def test_a_long_outage_stops_the_job_and_a_rerun_finishes(posts_file: Path,
                                                          pg_url: str) -> None:
    job = start(posts_file, pg_url, "long", "--store-wait-secs", "3")
    try:
        wait_for(lambda: count_results(pg_url) >= 1000 or job.poll() is not None, 180,
                 "1,000 results")
        assert job.poll() is None, job.communicate()
        dev_services("stop", "postgres")
        try:
            _, err = job.communicate(timeout=120)
        finally:
            dev_services("start", "postgres")
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 2, err[-3000:]
    errors = [ln for ln in err.splitlines() if ln.startswith("docstream run: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert "inputs (run long); when the store is back, run the same command with --run-id " \
           "long" in errors[0]
    assert f" of {N:,} inputs" in errors[0]
    print(errors[0])
    written_before = count_results(pg_url)
    assert 0 < written_before < N

    rerun = start(posts_file, pg_url, "long", "--store-wait-secs", "3")
    _out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-3000:]
    assert count_results(pg_url) == N
    assert audit_count(pg_url, "long") == N  # the rerun doubled nothing
    assert scalar(pg_url, "select count(*) - count(distinct position) from audit_log") == 0
