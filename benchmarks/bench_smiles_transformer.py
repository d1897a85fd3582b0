"""Throughput of the SMILES transformer provider as a ratio to a bare transformers loop.

Both embed the same molecules with the same model, tokenizer, device and precision, and mean-pool
over non-special tokens. The baseline is what one would write by hand: batches in input order,
each padded to its longest member, one forward pass per batch. The provider additionally
canonicalises every SMILES with rdkit and computes InChIKeys (work the baseline skips), and sorts
molecules by length so batches carry little padding.

Molecules: the first ``--n`` SMILES of rdkit's bundled NCI sample (``Data/NCI/first_5K.smi``) or
of ``--smiles-file`` that have an InChIKey, canonicalised once up front so both sides see the same strings.

    python benchmarks/bench_smiles_transformer.py                       # rxnfp's SMILES BERT, CPU or GPU
    python benchmarks/bench_smiles_transformer.py --checkpoint DIR --architecture auto --tokenizer auto
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from embhub.provider import Item
from embhub_smiles_transformer import SmilesTransformer


def read_smiles(path: Path | None, n: int) -> list[str]:
    from rdkit import RDConfig

    from embhub.identity.drugs import InvalidMolecule, parse_smiles

    path = path or Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
    molecules = []
    for line in path.read_text().splitlines():
        fields = line.split()
        try:
            molecules.append(parse_smiles(fields[0]).canonical_smiles)
        except (InvalidMolecule, IndexError):
            continue
        if len(molecules) == n:
            break
    return molecules


def bare_loop(model, tokenizer, smiles: list[str], batch_size: int, device) -> np.ndarray:
    """Batches in input order, padded to their longest member, mean over non-special tokens."""
    import torch

    vectors = []
    with torch.no_grad():
        for start in range(0, len(smiles), batch_size):
            encodings = [tokenizer.encode(s) for s in smiles[start : start + batch_size]]
            width = max(len(e.input_ids) for e in encodings)
            ids = torch.tensor([e.input_ids + [tokenizer.pad_id] * (width - len(e.input_ids)) for e in encodings])
            attention = torch.tensor([[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in encodings])
            content = torch.tensor([[not s for s in e.special] + [False] * (width - len(e.input_ids)) for e in encodings])
            states = model(input_ids=ids.to(device), attention_mask=attention.to(device)).last_hidden_state.float()
            weights = content.to(device).unsqueeze(-1).float()
            vectors.append(((states * weights).sum(1) / weights.sum(1)).cpu().numpy())
    return np.concatenate(vectors)


def timed(function, device) -> tuple[float, object]:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="python-package:rxnfp/models/transformers/bert_pretrained")
    parser.add_argument("--architecture", default="bert")
    parser.add_argument("--tokenizer", default="smiles-regex")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--smiles-file", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="the provider's rdkit worker processes")
    args = parser.parse_args()

    smiles = read_smiles(args.smiles_file, args.n)
    provider = SmilesTransformer(
        SmilesTransformer.Parameters(
            checkpoint=args.checkpoint,
            architecture=args.architecture,
            tokenizer=args.tokenizer,
            pooling="mean",
            forward_batch_size=args.batch_size,
            device=args.device,
            precision=args.precision,
            workers=args.workers,
        )
    )
    loaded = provider.load()
    model, tokenizer, device = loaded["model"], loaded["tokenizer"], loaded["device"]
    limit = loaded["limit"]
    smiles = [s for s in smiles if len(tokenizer.encode(s).input_ids) <= limit]
    items = [Item(str(i), s) for i, s in enumerate(smiles)]

    provider.embed(items[: args.batch_size])
    bare_loop(model, tokenizer, smiles[: args.batch_size], args.batch_size, device)
    provider_times, baseline_times = [], []
    for _ in range(args.repeats):
        seconds, result = timed(lambda: provider.embed(items), device)
        provider_times.append(seconds)
        seconds, baseline = timed(lambda: bare_loop(model, tokenizer, smiles, args.batch_size, device), device)
        baseline_times.append(seconds)
    assert len(result.input_ids) == len(smiles), result.failures[:3]
    difference = float(np.abs(result.vectors - baseline).max())

    provider_rate = len(smiles) / min(provider_times)
    baseline_rate = len(smiles) / min(baseline_times)
    print(f"checkpoint      {args.checkpoint} ({model.config.num_hidden_layers} layers, {model.config.hidden_size}-d)")
    print(f"device          {device} {str(loaded['dtype']).replace('torch.', '')}, batch {args.batch_size}, rdkit workers {args.workers}")
    print(f"molecules       {len(smiles)}, {np.mean([len(tokenizer.encode(s).input_ids) for s in smiles]):.1f} tokens on average")
    print(f"provider        {provider_rate:9.1f} molecules/s (best of {args.repeats}; includes rdkit canonicalisation + InChIKey)")
    print(f"bare loop       {baseline_rate:9.1f} molecules/s (best of {args.repeats}; input order, no canonicalisation)")
    print(f"ratio           {provider_rate / baseline_rate:9.2f}x the bare transformers loop")
    print(f"max |Δ vector|  {difference:.2e} (provider vs bare loop)")


if __name__ == "__main__":
    main()
