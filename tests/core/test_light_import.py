"""The core must stay light: importing embhub or running --help loads no heavy library."""

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "rdkit", "sklearn", "faiss", "sentence_transformers", "optuna", "matplotlib")

PROBE = """
import json, sys
from typer.testing import CliRunner
import embhub, embhub.cli
from embhub.cli import app
result = CliRunner().invoke(app, {args!r})
assert result.exit_code == 0, result.output
from embhub.plugins import load_plugins
load_plugins()
print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))
"""


def loaded_modules(args):
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_and_help_load_no_heavy_library():
    modules = loaded_modules(["--help"])
    assert "embhub" in modules
    assert not modules & set(HEAVY), modules & set(HEAVY)


def test_listing_models_and_plugins_loads_no_heavy_library():
    for args in (["models"], ["plugins"]):
        modules = loaded_modules(args)
        assert not modules & set(HEAVY), (args, modules & set(HEAVY))
