"""The explanation branch (pipelines.explain_branch): a bounded backlog off the main path, a
worker that maps and stores, drained at the end; on the real model through `docstream run`."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from docstream.cli import main
from docstream.pipelines.explain_service import ExplainRequest, ExplainService
from docstream.privacy.redact import IdentityRedactor
from docstream.store.engine import make_engine
from docstream.store.migrate import upgrade
from docstream.store.tables import ClassificationRow, ExplanationRow


def request(i: int) -> ExplainRequest:
    return ExplainRequest(source="s", doc_id=f"d{i}", model_name="m", model_version="1",
                          label="Sports", text=f"post number {i} about the match",
                          title=None, social=False, entities=None, run_id="r")


def fake_explanation(req: ExplainRequest) -> SimpleNamespace:
    words = [SimpleNamespace(text=m, start=req.text.index(m), end=req.text.index(m) + len(m),
                             score=0.5, raw=0.1 * (k + 1), field="text")
             for k, m in enumerate(req.text.split()[:3])]
    return SimpleNamespace(target=req.label, target_prob=0.6, method="integrated_gradients",
                           settings={"n_steps": 4}, delta=0.001, words=words,
                           windows=[SimpleNamespace(start=0, end=len(req.text), weight=1.0)])


def service(url: str, gate: threading.Event | None = None, backlog: int = 3) -> ExplainService:
    def explain(req: ExplainRequest) -> SimpleNamespace:
        if gate is not None:
            gate.wait(10)
        return fake_explanation(req)
    return ExplainService(url, lambda: explain, backlog=backlog, save_every=2,
                          redactor=IdentityRedactor())


def test_a_full_backlog_drops_instead_of_waiting(sqlite_url: str) -> None:
    upgrade(make_engine(sqlite_url))
    gate = threading.Event()  # the worker is stuck on its first request
    svc = service(sqlite_url, gate, backlog=3)
    t0 = time.perf_counter()
    accepted = [svc.submit(request(i)) for i in range(20)]
    took = time.perf_counter() - t0
    assert took < 0.5  # the main path never waited for an explanation
    assert 3 <= sum(accepted) <= 4  # the backlog, plus the one the worker holds
    gate.set()
    stats = svc.drain(timeout_s=30)
    assert stats.submitted == 20 and stats.explained == sum(accepted)
    assert stats.skipped == 20 - sum(accepted) and stats.failed == 0
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        rows = conn.execute(select(ExplanationRow.doc_id, ExplanationRow.words)).all()
    assert len(rows) == stats.explained
    assert all(len(words) == 3 for _id, words in rows)


def test_one_failing_document_never_stops_the_branch(sqlite_url: str) -> None:
    upgrade(make_engine(sqlite_url))

    def explain(req: ExplainRequest) -> SimpleNamespace:
        if req.doc_id == "d1":
            raise ValueError("nothing to explain")
        return fake_explanation(req)

    svc = ExplainService(sqlite_url, lambda: explain, backlog=10, redactor=IdentityRedactor())
    for i in range(4):
        svc.submit(request(i))
    stats = svc.drain(timeout_s=30)
    assert (stats.explained, stats.failed, stats.skipped) == (3, 1, 0)


@pytest.mark.slow
def test_a_run_explains_the_flagged_results(sqlite_url: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The bundled model on the sample posts: every flagged result (and only those) gets an
    explanation over its stored text; --explain off gives none."""
    assert main(["run", "--sink", sqlite_url, "--explain-steps", "8", "--no-progress",
                 "--json"]) == 0
    summary = capsys.readouterr().out
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        flagged = {(r.source, r.id): r.text for r in conn.execute(
            select(ClassificationRow.source, ClassificationRow.id, ClassificationRow.text)
            .where(ClassificationRow.needs_review.is_(True)))}
        explained = conn.execute(select(ExplanationRow.__table__)).all()
    assert flagged and {(e.source, e.doc_id) for e in explained} == set(flagged)
    for e in explained:
        assert e.settings["n_steps"] == 8 and e.method == "integrated_gradients"
        assert abs(e.delta) < 0.5 and e.windows and abs(sum(w["weight"] for w in e.windows) - 1) < 1e-6
        text = flagged[(e.source, e.doc_id)]
        assert all(text[w["start"]:w["end"]] == w["text"] for w in e.words)
        assert max(abs(w["score"]) for w in e.words) == pytest.approx(1.0)
    assert '"explained": ' + str(len(flagged)) in summary.replace(".0", "")
    # off: nothing explained on a rerun into a fresh store
    other = f"sqlite:///{tmp_path / 'off.db'}"
    assert main(["run", "--sink", other, "--explain", "off", "--no-progress"]) == 0
    engine2 = make_engine(other)
    with engine2.connect() as conn:
        assert conn.execute(select(ExplanationRow.doc_id)).all() == []
