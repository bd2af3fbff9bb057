"""Beam pipelines: wire sources, preprocessing, the model and the store together."""
