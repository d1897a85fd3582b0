"""Built-in embhub plugin (being written)."""
