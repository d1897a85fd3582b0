"""Importing the fusion package, its driver and its CLI module loads neither torch nor optuna."""

import json
import subprocess
import sys


def test_fuse_modules_import_without_heavy_libraries():
    probe = (
        "import json, sys; import embhub.fuse, embhub.fuse.run, embhub.fuse.output, embhub.cli.fuse; "
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert not loaded & {"torch", "optuna", "sklearn", "matplotlib"}
