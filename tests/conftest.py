"""Shared fixtures: every test runs with its own EMBHUB_HOME so no user files leak in or out."""

import pytest

from embhub.plugins import load_plugins


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("embhub-home")
    monkeypatch.setenv("EMBHUB_HOME", str(home))
    monkeypatch.delenv("EMBHUB_REGISTRY", raising=False)
    monkeypatch.delenv("EMBHUB_LOAD_PLUGINS", raising=False)
    yield home
    load_plugins(refresh=True)
