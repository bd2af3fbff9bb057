"""The project's root exception. A CLI catches it and prints one line, not a traceback."""


class DocstreamError(Exception):
    """An error a user can act on: the message names what, where, and what to do."""


class ConfigError(DocstreamError):
    """Bad arguments or configuration."""
