"""embhub: embeddings of genes and drugs, measured as perturbation-response predictors.

Importing this package is cheap on purpose: providers, torch, transformers and rdkit load only when a
command needs them.
"""

__version__ = "0.1.0"
