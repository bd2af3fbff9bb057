"""The training benchmarks' own logic, on generated data: the long documents of
bench.window_sampling and the ensemble of bench.ensemble."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bench import ensemble
from bench.window_sampling import long_documents
from tests.news_posts import LABELS, write_labelled

BUNDLED = Path(__file__).resolve().parents[2] / "model" / "bundled" / "news-topic"


def test_long_documents_join_articles_of_one_label(tmp_path: Path) -> None:
    generated = write_labelled(tmp_path / "posts.jsonl")
    rows = [json.loads(x) for x in generated.read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if "\n\n" not in r["text"]]  # one-paragraph articles only
    src = tmp_path / "articles.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    counts = long_documents(src, tmp_path / "long.jsonl", articles=8)
    docs = [json.loads(x) for x in (tmp_path / "long.jsonl").read_text().splitlines()]
    per = Counter((r["split"], r["label"]) for r in rows)
    assert counts == {s: sum(n // 8 for (sp, _), n in per.items() if sp == s)
                      for s in ("test", "train")}
    by_text = {r["text"]: (r["split"], r["label"]) for r in rows}
    for doc in docs:
        parts = doc["text"].split("\n\n")
        assert len(parts) == 8
        assert {by_text[p] for p in parts} == {(doc["split"], doc["label"])}
    assert len({d["id"] for d in docs}) == len(docs)
    assert {d["label"] for d in docs} == set(LABELS)


def test_ensemble_scores_each_model_and_their_mean(news_data: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ensemble.json"
    model = str(BUNDLED)
    assert ensemble.main(["--model", model, "--model", model, "--data", str(news_data),
                          "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert scores["ensemble"] == scores[model] > 0.5  # the mean of one model twice is itself
    assert "ensemble of 2" in capsys.readouterr().out
