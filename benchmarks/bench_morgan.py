"""Morgan extraction throughput, store writing included, as a ratio to a bare rdkit loop.

Baselines (same process, same molecules): (1) parse each SMILES with rdkit and compute its Morgan bits
into a numpy matrix held in memory — no InChIKey, no store; (2) the same plus the InChIKey and canonical
SMILES that embhub keys and labels drug stores by. The second ratio isolates embhub's own overhead
(batching, streaming into a resumable Zarr store, manifest).

    python benchmarks/bench_morgan.py [--molecules 5000]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np


def molecules(count: int) -> list[tuple[str, str]]:
    """Distinct real drugs, each optionally mixed with an alkane of growing length (distinct InChIKeys)."""
    bundled = Path(__file__).resolve().parents[1] / "embhub" / "demo_data" / "approved_drugs.csv"
    with bundled.open() as handle:
        drugs = [(row["id"], row["smiles"]) for row in csv.DictReader(handle)]
    out = []
    k = 0
    while len(out) < count:
        for name, smiles in drugs:
            out.append((f"{name}-{k}", smiles if k == 0 else f"{smiles}.{'C' * k}"))
        k += 1
    return out[:count]


def bare_rdkit(items: list[tuple[str, str]], with_keys: bool = False) -> float:
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdFingerprintGenerator

    RDLogger.DisableLog("rdApp.*")
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    start = time.perf_counter()
    matrix = np.zeros((len(items), 2048), dtype=np.float32)
    keys = []
    for row, (_, smiles) in enumerate(items):
        mol = Chem.MolFromSmiles(smiles)
        matrix[row] = generator.GetFingerprintAsNumPy(mol)
        if with_keys:
            keys.append((Chem.MolToInchiKey(mol), Chem.MolToSmiles(mol)))
    return time.perf_counter() - start


def embhub_extract(items: list[tuple[str, str]], workdir: Path) -> float:
    from embhub.extract import extract
    from embhub.plugins import load_plugins
    from embhub.provider import Item
    from embhub.registry import load_registry

    plugins = load_plugins()
    spec, provider = load_registry(plugins).resolve("morgan-2-2048", plugins)
    inputs = [Item(name, smiles, row) for row, (name, smiles) in enumerate(items, start=2)]
    start = time.perf_counter()
    result = extract(spec, provider, inputs, workdir / "bench.zarr", plugins=plugins)
    elapsed = time.perf_counter() - start
    assert result.manifest["counts"]["done"] == len(items), result.manifest["counts"]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=5000)
    args = parser.parse_args()
    items = molecules(args.molecules)
    bare_rdkit(items[:50])
    baseline = bare_rdkit(items)
    keyed = bare_rdkit(items, with_keys=True)
    with tempfile.TemporaryDirectory() as tmp:
        ours = embhub_extract(items, Path(tmp))
    n = len(items)
    print(f"molecules: {n}")
    print(f"bare rdkit loop (parse + Morgan bits, in memory): {n / baseline:,.0f} mol/s")
    print(f"embhub extract morgan-2-2048 (+ InChIKey, canonical SMILES, Zarr store): {n / ours:,.0f} mol/s")
    print(f"bare rdkit loop + InChIKey + canonical SMILES (embhub's per-molecule work): {n / keyed:,.0f} mol/s")
    print(f"ratio embhub / bare rdkit throughput: {baseline / ours:.2f}")
    print(f"ratio embhub / keyed rdkit loop throughput (store, batching, manifest overhead): {keyed / ours:.2f}")


if __name__ == "__main__":
    main()
