"""Exceptions of the model package, rooted in the project's one exception."""

from docstream.errors import DocstreamError


class ModelError(DocstreamError):
    """The model cannot be built, loaded or run; the message says which and what to do."""


class ArtifactError(ModelError):
    """A model artifact is missing, corrupt or incompatible; the message says which file and why."""


class BaseEncoderError(ModelError):
    """A base encoder (`--base DIR|PACKAGE`) cannot be found or read; the message says why."""
