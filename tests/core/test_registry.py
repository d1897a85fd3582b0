"""registry.yaml: user entries, validation with one-line errors, safe loading."""

import pytest

from embhub.errors import RegistryError
from embhub.plugins import load_plugins
from embhub.registry import load_registry
from tests.support.cli import assert_one_line_error, run_cli


def registry_file(tmp_path, text, name="registry.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builtin_registry_resolves_morgan():
    plugins = load_plugins(refresh=True)
    spec, provider = load_registry(plugins).resolve("morgan-2-2048", plugins)
    assert spec.provider == "morgan" and provider.parameters.radius == 2 and provider.dim == 2048


def test_user_registry_file_and_explicit_file_add_models(tmp_path, isolated_home):
    (isolated_home / "registry.yaml").write_text("models:\n  my-fp:\n    provider: morgan\n    parameters: {n_bits: 64}\n")
    extra = registry_file(tmp_path, "models:\n  other-fp:\n    provider: morgan\n    parameters: {radius: 3}\n")
    outcome = run_cli("models", "--registry", extra)
    assert outcome.exit_code == 0
    assert "my-fp" in outcome.stdout and "other-fp" in outcome.stdout
    row = next(line for line in outcome.stdout.splitlines() if "my-fp" in line)
    assert "64" in row and "drug" in row and "yes" in row


@pytest.mark.parametrize(
    "text,fragments",
    [
        ("models:\n  x:\n    provider: nosuch\n", ["model 'x'", "provider 'nosuch'", "not installed"]),
        ("models:\n  x:\n    provider: morgan\n    parameters: {radius: 2, bogus: 1}\n", ["model 'x'", "no parameter 'bogus'", "radius"]),
        ("models:\n  x:\n    provider: morgan\n    parameters: {radius: two}\n", ["parameter 'radius' = 'two' should be int"]),
        ("models:\n  x:\n    provider: morgan\n    parameters: {n_bits: 0}\n", ["model 'x'", "n_bits must be ≥ 1"]),
        ("models:\n  x:\n    provider: morgan\n  x:\n    provider: morgan\n", ["duplicate key 'x' at line 4"]),
        ("models:\n  x:\n    provider: morgan\n    colour: red\n", ["unknown key 'colour'"]),
        ("models:\n  x: [1, 2\n", ["not valid YAML"]),
        ("models:\n  x:\n    provider: morgan\n    checkpoint: foo\n", ["takes no checkpoint"]),
    ],
)
def test_invalid_entries_give_one_line_errors(tmp_path, text, fragments):
    path = registry_file(tmp_path, text)
    outcome = run_cli("extract", "--model", "x", "--registry", path, "--input", path)
    assert_one_line_error(outcome, *fragments)


def test_models_lists_everything_then_fails_on_an_invalid_entry(tmp_path):
    path = registry_file(tmp_path, "models:\n  ghost:\n    provider: nosuch\n")
    outcome = run_cli("models", "--registry", path)
    assert outcome.exit_code == 1
    assert "morgan-2-2048" in outcome.stdout and "ghost" in outcome.stdout
    assert "provider 'nosuch'" in outcome.stderr


def test_safe_loader_refuses_python_objects(tmp_path):
    path = registry_file(tmp_path, "models:\n  x: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(RegistryError, match="not valid YAML"):
        load_registry(load_plugins(refresh=True), [path])


def test_unknown_model_suggests_close_names():
    outcome = run_cli("extract", "--model", "morgan-2-2049", "--input", "x.csv")
    assert_one_line_error(outcome, "no model named 'morgan-2-2049'", "morgan-2-2048")


def test_a_provider_left_out_by_embhub_load_plugins_is_not_called_uninstalled(tmp_path, monkeypatch):
    genes = tmp_path / "genes.txt"
    genes.write_text("TP53\n")
    monkeypatch.setenv("EMBHUB_LOAD_PLUGINS", "morgan")
    outcome = run_cli("extract", "--model", "random-gene-100", "--input", genes, "--out", tmp_path / "g.zarr")
    assert_one_line_error(outcome, "provider 'random-gene', which is not loaded: EMBHUB_LOAD_PLUGINS='morgan'", "unset it")


def test_a_path_parameter_takes_the_text_a_registry_file_or_set_gives():
    from dataclasses import dataclass
    from pathlib import Path

    from embhub.provider import Provider
    from embhub.registry import ModelSpec, build_parameters

    class Reads(Provider):
        name, entity, id_namespace, key_namespace = "reads", "gene", "gene", "gene"

        @dataclass
        class Parameters:
            table: Path = Path("table.tsv")
            fallback: Path | None = None

    built = build_parameters(ModelSpec("reads-mine", "reads", {"table": "my/table.tsv", "fallback": "x.tsv"}), Reads)
    assert built.table == Path("my/table.tsv") and built.fallback == Path("x.tsv")
    assert build_parameters(ModelSpec("reads-none", "reads", {"fallback": None}), Reads).fallback is None
    with pytest.raises(RegistryError, match="'table' = 3 should be Path"):
        build_parameters(ModelSpec("reads-bad", "reads", {"table": 3}), Reads)
