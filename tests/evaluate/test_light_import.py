"""Importing the evaluate library loads no heavy library (they load inside the functions that need them)."""

import json
import subprocess
import sys

HEAVY = {"torch", "sklearn", "faiss", "matplotlib", "transformers"}


def test_evaluate_modules_import_light():
    probe = ("import json, sys; import embhub.evaluate.runner, embhub.evaluate.report, embhub.evaluate.summary, "
             "embhub.evaluate.deg, embhub.evaluate.lasso, embhub.cli.evaluate; "
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert not set(json.loads(out.stdout.strip().splitlines()[-1])) & HEAVY
