"""Third-party providers arrive as pip packages with an entry point; broken ones are reported, not fatal."""


import numpy as np
import pytest

from embhub.store import EmbeddingStore
from tests.support.cli import run_cli_process
from tests.support.packages import build_plugin_package, pip_install_target

HASH_PROVIDER = '''
"""A throw-away provider: each word becomes 8 numbers derived from its bytes."""
from dataclasses import dataclass, field
import hashlib
import numpy as np
from embhub.hookspecs import hookimpl
from embhub.provider import Embedded, Failure, Provider


class WordHash(Provider):
    name = "wordhash"
    entity = "word"
    id_namespace = "word"
    key_namespace = "word"
    version = "9.9"
    licence = "MIT"
    citation = "nobody (2026)"

    @dataclass
    class Parameters:
        scale: float = field(default=1.0, metadata={"help": "multiplier"})

    @property
    def dim(self):
        return 8

    def embed(self, items):
        ids, keys, vectors, failures = [], [], [], []
        for item in items:
            if not item.value.isalpha():
                failures.append(Failure(item.input_id, f"'{item.value}' is not a word"))
                continue
            digest = hashlib.sha256(item.value.encode()).digest()[:8]
            ids.append(item.input_id)
            keys.append(item.value.lower())
            vectors.append(np.frombuffer(digest, dtype=np.uint8).astype(np.float32) * self.parameters.scale)
        return Embedded(ids, keys, np.array(vectors, dtype=np.float32).reshape(len(ids), 8), failures)


@hookimpl
def register_providers(register):
    register(WordHash)


@hookimpl
def register_models(register):
    register("wordhash-double", provider="wordhash", parameters={"scale": 2.0}, description="doubled")
'''

BROKEN = '''
raise RuntimeError("this plugin is broken on purpose")
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugins")
    target = root / "site"
    pip_install_target(build_plugin_package(root, "embhub-wordhash", "embhub_wordhash", "wordhash", HASH_PROVIDER), target)
    pip_install_target(build_plugin_package(root, "embhub-broken", "embhub_broken", "broken", BROKEN), target)
    return target


def env_with(site, **extra):
    import os

    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), **extra}


def test_third_party_plugin_is_listed_and_extracts_without_changing_embhub(site, tmp_path):
    env = env_with(site)
    plugins = run_cli_process("plugins", env=env)
    assert plugins.exit_code == 0, plugins.stderr
    assert "wordhash" in plugins.stdout and "embhub-wordhash" in plugins.stdout and "1.2.3" in plugins.stdout
    models = run_cli_process("models", env=env)
    assert "wordhash-double" in models.stdout and "plugin wordhash" in models.stdout

    words = tmp_path / "words.txt"
    words.write_text("alpha\nbeta\n42\ngamma\n")
    out = tmp_path / "w.zarr"
    done = run_cli_process("extract", "--model", "wordhash-double", "--input", words, "--out", out, env=env)
    assert done.exit_code == 0, done.stderr
    store = EmbeddingStore.open(out)
    assert list(store.ids) == ["alpha", "beta", "gamma"]
    import hashlib

    expected = np.frombuffer(hashlib.sha256(b"beta").digest()[:8], dtype=np.uint8) * 2.0
    np.testing.assert_array_equal(store.vectors()[1], expected)
    assert store.manifest["provider"]["distribution"] == "embhub-wordhash"
    assert store.manifest["provider"]["version"] == "9.9"
    assert store.failures()[0]["reason"] == "'42' is not a word"


def test_broken_plugin_is_reported_by_name_and_does_not_break_the_cli(site):
    env = env_with(site)
    plugins = run_cli_process("plugins", env=env)
    assert plugins.exit_code == 0
    line = next(line for line in plugins.stdout.splitlines() if "broken" in line)
    assert "failed" in line and "RuntimeError" in line
    assert "Traceback" not in plugins.stdout + plugins.stderr
    models = run_cli_process("models", env=env)
    assert models.exit_code == 0 and "morgan-2-2048" in models.stdout


def test_load_plugins_environment_variable_restricts_loading(site):
    env = env_with(site, EMBHUB_LOAD_PLUGINS="morgan")
    plugins = run_cli_process("plugins", env=env)
    assert "morgan" in plugins.stdout and "wordhash" not in plugins.stdout and "broken" not in plugins.stdout
