"""ESM-2 provider throughput (residues/s) as a ratio to a bare transformers loop on the same sequences.

Baseline (same process, same device and precision, same checkpoint): for each protein, tokenize it alone,
run ``EsmModel`` once without padding and average the last layer over its residues. The provider
additionally sorts windows by length and packs them into padded batches under a token budget.

By default the checkpoint is a tiny random ESM-2 (2 layers, 32 wide) saved in the real Hugging Face
format, so the numbers measure batching and overhead rather than a real model's arithmetic; pass
``--checkpoint facebook/esm2_t33_650M_UR50D`` (or a local copy) for a real model. Sequences are the 40 real
human Swiss-Prot proteins of ``tests/data/proteins`` (repeated ``--repeat`` times) or ``--fasta``.

    python benchmarks/bench_esm2.py [--checkpoint DIR_OR_HUB_NAME] [--fasta FILE] [--repeat 5]
        [--layers 2 --hidden 32 --heads 4] [--max-tokens 16384] [--device auto]

``--layers 33 --hidden 1280 --heads 20`` gives the 650M model's shape with random weights (its speed, not its vectors).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FASTA = ROOT / "tests" / "data" / "proteins" / "human_swissprot_2014_sample.fasta"
ESM_ALPHABET = "<cls> <pad> <eos> <unk> L A G V S E R T I D P K Q N F Y M H W C X B U Z O . - <null_1> <mask>".split()


def save_tiny_checkpoint(directory: Path, layers: int, hidden: int, heads: int) -> Path:
    import torch
    import transformers

    (directory / "vocab.txt").write_text("\n".join(ESM_ALPHABET) + "\n")
    tokenizer = transformers.EsmTokenizer(str(directory / "vocab.txt"))
    config = transformers.EsmConfig(
        vocab_size=len(ESM_ALPHABET), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=4 * hidden, max_position_embeddings=1026, position_embedding_type="rotary",
        pad_token_id=tokenizer.pad_token_id, mask_token_id=tokenizer.mask_token_id, token_dropout=True,
        emb_layer_norm_before=False,
    )
    torch.manual_seed(0)
    transformers.EsmModel(config, add_pooling_layer=False).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_loop(encoder, sequences: list[str]) -> np.ndarray:
    """One unpadded forward pass per protein with the provider's own model and tokenizer objects."""
    import torch

    vectors = []
    with torch.inference_mode():
        for sequence in sequences:
            encoded = encoder.tokenizer(sequence, return_tensors="pt").to(encoder.device)
            hidden = encoder.model(**encoded).last_hidden_state[0, 1:-1].float()
            vectors.append(hidden.mean(dim=0).cpu().numpy())
    synchronize(encoder.device)
    return np.stack(vectors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="ESM checkpoint directory or hub name (default: a tiny random one)")
    parser.add_argument("--fasta", type=Path, default=FASTA)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=16384)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()

    from embhub_esm2 import _hub_snapshot
    from embhub_esm2.encoder import EsmEncoder
    from embhub_esm2.sequences import read_fasta

    sequences = [r.sequence for r in read_fasta(args.fasta)] * args.repeat
    longest = max(len(s) for s in sequences)
    with tempfile.TemporaryDirectory() as scratch:
        if args.checkpoint:
            local = Path(args.checkpoint)
            checkpoint = local if local.is_dir() else _hub_snapshot(args.checkpoint, None)
            label = args.checkpoint
        else:
            checkpoint = save_tiny_checkpoint(Path(scratch), args.layers, args.hidden, args.heads)
            label = f"random-weight ESM-2 architecture ({args.layers} layers, {args.hidden} wide, {args.heads} heads)"
        encoder = EsmEncoder(checkpoint, device=args.device, precision=args.precision)
        residues = sum(len(s) for s in sequences)
        print(f"checkpoint: {label}; device {encoder.device}, {str(encoder.dtype).removeprefix('torch.')}")
        print(f"{len(sequences)} proteins, {residues} residues, longest {longest} (whole proteins: window = longest)")

        encoder.embed(sequences[:8], window=longest, max_tokens=args.max_tokens)
        bare_loop(encoder, sequences[:8])

        start = time.perf_counter()
        baseline = bare_loop(encoder, sequences)
        baseline_s = time.perf_counter() - start
        start = time.perf_counter()
        batched = encoder.embed(sequences, window=longest, max_tokens=args.max_tokens)
        synchronize(encoder.device)
        provider_s = time.perf_counter() - start

    difference = float(np.abs(batched - baseline).max())
    print(f"bare transformers loop: {residues / baseline_s:12.0f} residues/s  ({baseline_s:.2f} s)")
    print(f"embhub ESM-2 provider:  {residues / provider_s:12.0f} residues/s  ({provider_s:.2f} s)")
    print(f"ratio provider / bare loop: {baseline_s / provider_s:.2f}x   (max |difference| {difference:.2e})")


if __name__ == "__main__":
    main()
