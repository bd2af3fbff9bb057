"""Privacy: the one redaction step every write passes through."""
