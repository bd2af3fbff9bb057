"""Exceptions of the model package, rooted in one class."""


class ModelError(Exception):
    """Base class for model errors."""


class ArtifactError(ModelError):
    """A model artifact is missing, corrupt or incompatible; the message says which file and why."""
