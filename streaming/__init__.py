"""Kafka I/O for Beam on kafka-python: records, a partition-per-restriction source, the
dead-letter publisher and the producer. Knows nothing of the model or the store."""
