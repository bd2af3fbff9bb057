"""Store exceptions."""

from docstream.errors import DocstreamError


class StoreError(DocstreamError):
    """The store cannot be reached, migrated or written."""


class StoreWriteError(StoreError):
    """A batch failed to write; it was rolled back as a whole."""


class StoreUnavailableError(StoreWriteError):
    """The database is (for now) out of reach or refused for a transient reason: connection
    refused or lost, server restarting, serialization failure, deadlock, too many
    connections, SQLite busy. Nothing of the batch was written; wait and retry it as it is
    (see `docstream.store.transient.is_transient`)."""


class FencedError(StoreWriteError):
    """A batch of a Kafka partition was not written because another worker has claimed the
    partition since this one did (its owner epoch moved on): the new owner reads those
    records again from the stored position. Nothing of the batch was written; drop it."""
