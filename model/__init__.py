"""The classifier: plain torch + tokenizer code. Imports nothing of Beam, Kafka or SQL."""
