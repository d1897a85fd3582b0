"""The README demo: runs the main job on bundled data by calling the same commands a user types.

Each step is printed as the command it runs, so the demo doubles as a tutorial.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DRUGS = ROOT / "embhub" / "demo_data" / "approved_drugs.csv"


def step(*args: str) -> None:
    print(f"\n$ embhub {shlex.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "embhub", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    step("plugins")
    step("models")
    store = out / "stores" / "morgan-2-2048-approved-drugs.zarr"
    step("extract", "--model", "morgan-2-2048", "--input", str(DRUGS), "--out", str(store))
    step("stores", "show", str(store))
    step("stores", "verify", str(store))
    step("stores", "export", str(store), str(out / "morgan-2-2048-approved-drugs.h5ad"), "--overwrite")


if __name__ == "__main__":
    main()
