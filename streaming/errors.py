"""Exceptions of the streaming package, rooted in the project's one exception."""

from docstream.errors import DocstreamError


class StreamingError(DocstreamError):
    """Kafka cannot be reached, a topic is missing, or a URL is malformed."""


class KafkaUrlError(StreamingError):
    """A kafka:// URL that cannot be used; the message says what to write instead."""
