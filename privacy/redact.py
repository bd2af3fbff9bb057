"""The redaction step. Everything written to the store passes through `Redactor.redact`.

It is the identity for now; the privacy work fills in PII detection (Presidio/spaCy)
without touching the writer or the pipelines.
"""

from __future__ import annotations

from typing import Protocol

from docstream.schemas.envelope import WriteBatch


class Redactor(Protocol):
    name: str

    def redact(self, batch: WriteBatch) -> WriteBatch:
        """Return the batch with personal data removed from every text and payload."""
        ...


class IdentityRedactor:
    """Writes everything as it came. Chosen explicitly until PII redaction exists."""

    name = "identity"

    def redact(self, batch: WriteBatch) -> WriteBatch:
        return batch


def default_redactor() -> Redactor:
    return IdentityRedactor()
