"""AIDO.Cell gene embeddings (in progress on a branch)."""
