"""The README demo: the main job on bundled data, by running the same commands a user types.

1. simulate a CRISPRi screen on the real STRING subgraph (Replogle layout, labelled SIMULATED) and
   prepare it: responses, DEG labels, folds, experimental-error ceiling;
2. extract graph (STRING eigenmap and GNN), text (GenePT) and random gene embeddings for its genes;
3. evaluate them with the study's kNN protocol against the baselines and the ceiling: table + plots;
4. extract Morgan fingerprints for a bundled list of real approved drugs.

Each step is printed as the command it runs, so the demo doubles as a tutorial.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DRUGS = ROOT / "embhub" / "demo_data" / "approved_drugs.csv"
GENE_MODELS = ("string-spectral-demo", "string-gnn-demo", "genept-minilm", "random-gene-100")


def step(*args: str) -> None:
    print(f"\n$ embhub {shlex.join(args)}", flush=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "embhub", *args], check=True)
    print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    out = parser.parse_args().out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("EMBHUB_HOME", str(out))
    perturbations = out / "demo-perturbations.tsv"

    step("plugins")
    step("datasets", "demo")
    step("datasets", "perturbations", "demo", "--out", str(perturbations))
    for model in GENE_MODELS:
        step("extract", "--model", model, "--input", str(perturbations))
    step("evaluate", "--dataset", "demo", "--stores", *GENE_MODELS, "--out", str(out / "results"), "--overwrite")

    drugs = out / "stores" / "morgan-2-2048-approved-drugs.zarr"
    step("extract", "--model", "morgan-2-2048", "--input", str(DRUGS), "--out", str(drugs))
    step("stores", "show", str(drugs))
    print(f"\nDone. Results table and plots: {out / 'results'}; stores: {out / 'stores'}")


if __name__ == "__main__":
    main()
