"""Helpers shared by tests: running the CLI and building throw-away plugin packages."""
