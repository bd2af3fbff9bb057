"""docstream: classify news and social posts from Kafka or files into a SQL store."""

__version__ = "0.1.0"
