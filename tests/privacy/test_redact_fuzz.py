"""The redactor never raises, whatever a batch holds (the store's writer fuzzing strategies:
every Unicode category, lone surrogates, NUL, odd bytes), and changes no position."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from docstream.privacy.policy import Policy, load_policy
from docstream.privacy.redact import PolicyRedactor
from docstream.schemas.envelope import WriteBatch
from tests.privacy.conftest import TEST_KEY
from tests.store.test_writer_fuzz import batches

_POLICY = Policy.model_validate({**load_policy("strict").model_dump(), "ner": "always"})
REDACTOR = PolicyRedactor(_POLICY, TEST_KEY.encode(), entities=True)


@settings(derandomize=True, deadline=None, max_examples=150,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=batches)
def test_redaction_never_raises(batch: WriteBatch) -> None:
    out = REDACTOR.redact(batch)
    assert [r.position for r in out.results] == [r.position for r in batch.results]
    assert [f.dead_letter.position for f in out.failures] == \
        [f.dead_letter.position for f in batch.failures]
    assert {r.pii_policy for r in (*out.results, *out.failures)} <= {"strict@1"}
