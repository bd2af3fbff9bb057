"""Store exceptions."""

from docstream.errors import DocstreamError


class StoreError(DocstreamError):
    """The store cannot be reached, migrated or written."""


class StoreWriteError(StoreError):
    """A batch failed to write; it was rolled back as a whole."""
