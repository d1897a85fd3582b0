"""Plugins that are broken in how they register: each is named in one line and never breaks the rest of the CLI."""

import textwrap
from importlib.metadata import EntryPoint, entry_points

import pytest

import embhub.plugins
from tests.support.cli import assert_one_line_error, run_cli

PROVIDER = '''
from dataclasses import dataclass
import numpy as np
from embhub.hookspecs import hookimpl
from embhub.provider import Embedded, Provider


class Fake(Provider):
    name = "{name}"
    entity = "drug"
    id_namespace = "smiles"
    key_namespace = "inchikey"
    requires = {requires}

    @dataclass
    class Parameters:
        radius: int = 2
        n_bits: int = 2048

    @property
    def dim(self):
        return {dim}

    def embed(self, items):
        return Embedded([i.input_id for i in items], [i.value for i in items], np.zeros((len(items), 3)))


@hookimpl
def register_providers(register):
    register(Fake)


@hookimpl
def register_models(register):
    register("{name}-fake", provider="{name}")
'''


@pytest.fixture
def install(tmp_path, monkeypatch):
    """Makes ``install(entry_name, source)`` an installed plugin module, next to the built-in ones."""
    installed = []
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(
        embhub.plugins, "entry_points", lambda group: [*entry_points(group=group), *installed]
    )

    def install_plugin(entry_name, source):
        module = f"plugin_{entry_name}_{tmp_path.name}"  # a fresh name: each test's source, not a cached module
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        installed.append(EntryPoint(entry_name, module, "embhub"))

    return install_plugin


def provider_source(name="wordy", requires="()", dim=3, parameters=None):
    source = PROVIDER.format(name=name, requires=requires, dim=dim)
    if parameters is not None:
        source = source.replace("        radius: int = 2\n        n_bits: int = 2048\n", parameters)
    return source


def test_a_hook_with_a_misspelt_name_marks_only_that_plugin_failed(install):
    install("typo", "from embhub.hookspecs import hookimpl\n\n@hookimpl\ndef register_provider(register):\n    pass\n")
    listed = run_cli("plugins")
    assert listed.exit_code == 0
    line = next(line for line in listed.stdout.splitlines() if "typo" in line)
    assert "failed" in line and "register_provider" in line
    assert run_cli("models").exit_code == 0


def test_a_provider_name_claimed_by_two_plugins_is_refused_naming_both(install, tmp_path):
    install("zz_impostor", provider_source(name="morgan"))
    drugs = tmp_path / "drugs.txt"
    drugs.write_text("CCO\n")
    outcome = run_cli("extract", "--model", "morgan-2-2048", "--input", drugs, "--out", tmp_path / "d.zarr")
    assert_one_line_error(outcome, "'morgan'", "'zz_impostor'", "EMBHUB_LOAD_PLUGINS")
    assert not (tmp_path / "d.zarr").exists()


@pytest.mark.parametrize(
    "parameters, fragment",
    [
        ("        pass\n    Parameters = dict\n", "not a dataclass"),
        ("        radius: 'Undefined' = 2\n", "Undefined"),
        ("        radius: int\n", "'radius' has no default"),
    ],
)
def test_a_provider_with_an_unusable_parameters_class_is_named_when_used(install, tmp_path, parameters, fragment):
    install("oddparams", provider_source(parameters=parameters))
    listed = run_cli("plugins")
    assert listed.exit_code == 0 and "Traceback" not in listed.stderr
    outcome = run_cli("extract", "--model", "wordy-fake", "--input", tmp_path / "none.txt")
    assert_one_line_error(outcome, "'wordy'", "'oddparams'", fragment)


def test_a_dotted_requirement_whose_package_is_missing_is_reported_not_raised(install, tmp_path):
    install("needs", provider_source(requires="('nosuchpackage_xyz.models',)"))
    models = run_cli("models")
    assert models.exit_code == 0
    line = next(line for line in models.stdout.splitlines() if "wordy-fake" in line)
    assert "nosuchpackage_xyz" in line
    words = tmp_path / "words.txt"
    words.write_text("CCO\n")
    outcome = run_cli("extract", "--model", "wordy-fake", "--input", words, "--out", tmp_path / "w.zarr")
    assert_one_line_error(outcome, "wordy-fake", "pip install nosuchpackage_xyz")


@pytest.mark.parametrize("dim, works", [("np.int64(3)", True), ("'3'", False), ("0", False), ("1 / 0", False)])
def test_a_declared_dim_is_used_when_it_is_a_whole_number_and_named_when_it_is_not(install, tmp_path, dim, works):
    install("dims", provider_source(dim=dim))
    words = tmp_path / "words.txt"
    words.write_text("CCO\nCCN\n")
    outcome = run_cli("extract", "--model", "wordy-fake", "--input", words, "--out", tmp_path / "w.zarr")
    if works:
        assert outcome.exit_code == 0, outcome
        assert "dim 3" in outcome.stdout
    else:
        assert_one_line_error(outcome, "provider 'wordy'", "'dims'", "dim")


MODELS_ONLY = '''
from embhub.hookspecs import hookimpl


@hookimpl
def register_models(register):
    register({entry})
'''


@pytest.mark.parametrize(
    "first, second, fragment",
    [
        ('"mine", provider="morgan", parmeters={"radius": 3}', None, "unknown key 'parmeters'"),
        ('"mine", provider="morgan"', '"mine", provider="morgan", parameters={"radius": 3}', "both plugin a_models and plugin b_models"),
    ],
)
def test_a_plugins_broken_model_entry_is_refused_by_name_and_leaves_other_models_working(install, tmp_path, first, second, fragment):
    install("a_models", MODELS_ONLY.format(entry=first))
    if second:
        install("b_models", MODELS_ONLY.format(entry=second))
    drugs = tmp_path / "drugs.txt"
    drugs.write_text("CCO\n")
    other = run_cli("extract", "--model", "morgan-1-2048", "--input", drugs, "--out", tmp_path / "d.zarr")
    assert other.exit_code == 0, other
    assert_one_line_error(run_cli("extract", "--model", "mine", "--input", drugs, "--out", tmp_path / "m.zarr"), "'mine'", fragment)
    models = run_cli("models")
    assert "morgan-1-2048" in models.stdout and fragment in models.stderr
