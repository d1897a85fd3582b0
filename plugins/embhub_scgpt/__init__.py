"""scGPT gene embeddings (in progress on a branch)."""
