"""The project's one exception root, at the bottom of the import graph.

Every layer (schemas, preprocess, model, store, streaming, pipelines, training) may import
this module; it imports nothing, so the GPU benchmark can load the model package without
pydantic. A CLI catches `DocstreamError` and prints one line instead of a traceback.
"""


class DocstreamError(Exception):
    """An error a user can act on: the message names what, where, and what to do."""


class ConfigError(DocstreamError):
    """Bad arguments or configuration."""
