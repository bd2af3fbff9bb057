"""`GET /metrics` of `docstream serve`: the store-level gauges parse and equal what the seeded
store holds (computed from `Seed`, never from the store), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from docstream.web.metrics import StoreCollector
from tests.web.conftest import SeededStore, client_for


def scrape(client: TestClient) -> dict[str, Any]:
    """{family name: {label values (sorted tuple of pairs): value}}."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    out: dict[str, Any] = {}
    for family in text_string_to_metric_families(response.text):
        out[family.name] = {tuple(sorted(s.labels.items())): s.value for s in family.samples}
    return out


def by(values: dict[tuple[tuple[str, str], ...], float], label: str) -> dict[str, int]:
    return {dict(k)[label]: int(v) for k, v in values.items()}


def test_store_gauges_equal_the_seed(api: TestClient, seeded: SeededStore) -> None:
    seed = seeded.seed
    got = scrape(api)
    assert got["docstream_store_up"] == {(): 1.0}
    assert by(got["docstream_store_results"], "label") == Counter(
        r["label"] for r in seed.results)
    flagged = [r for r in seed.results if r["needs_review"]]
    assert got["docstream_store_needs_review"] == {(): len(flagged)}
    reviewed = {(r["source"], r["doc_id"]) for r in seed.reviews}
    queue = [r for r in flagged if (r["source"], r["id"]) not in reviewed]
    assert 0 < len(queue) < len(flagged)
    assert got["docstream_store_review_queue"] == {(): len(queue)}
    assert by(got["docstream_store_reviews"], "action") == Counter(
        r["action"] for r in seed.reviews)
    assert by(got["docstream_store_dead_letters_open"], "reason") == Counter(
        d["reason"] for d in seed.dead_letters if d["resolved_at"] is None)
    assert by(got["docstream_store_runs"], "status") == Counter(r["status"] for r in seed.runs)
    newest = max(r["processed_at"] for r in seed.results).timestamp()
    assert got["docstream_store_last_processed_timestamp_seconds"] == {(): newest}
    # the same as the API's queue: flagged and never reviewed
    page = api.get("/api/queue", params={"limit": 500}).json()
    assert len(page["items"]) == len(queue)


def test_two_apps_in_one_process_have_their_own_registries(seeded: SeededStore) -> None:
    with client_for(seeded.url) as one, client_for(seeded.url) as two:
        assert scrape(one)["docstream_store_needs_review"] == scrape(
            two)["docstream_store_needs_review"]
        assert one.app.state.metrics_registry is not two.app.state.metrics_registry


def test_openmetrics_on_request(api: TestClient) -> None:
    response = api.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_a_store_that_cannot_be_read_says_up_0() -> None:
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", poolclass=NullPool)
    try:
        names = {f.name: f for f in StoreCollector(engine).collect()}
    finally:
        engine.dispose()
    assert names["docstream_store_up"].samples[0].value == 0.0
    assert "docstream_store_results" not in names
