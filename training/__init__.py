"""Training and evaluation of docstream models.

Both go through the same path as `docstream run`: text -> `preprocess.Preprocessor.prepare`
(clean -> spaCy sentences -> token-id chunks) -> model -> `model.classify.DocClassifier`.
Training fits on chunks, each labelled with its document's label; evaluation scores whole
documents with the calibrated, chunk-aggregated probabilities that `run` stores.
"""
