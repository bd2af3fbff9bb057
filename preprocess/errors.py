"""Exceptions of the preprocessing package, rooted in the project's one exception."""

from docstream.errors import DocstreamError


class PreprocessError(DocstreamError):
    """The preprocessing path cannot be set up (e.g. the spaCy pipeline is missing)."""
