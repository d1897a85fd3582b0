"""Fusion training time per epoch on Essential-sized data, against a linear model on the same inputs.

Essential-sized: 4 cell lines × ~2,000 perturbations (≈2,500 unique genes), 6,640 response genes, and the 29
gene embeddings of the study's fusion runs with their dimensions (benchmark-protocol-details.md §7.4),
each covering a random 60–100 % of the genes. Data are random: only the shapes matter for time.

Baseline, measured in the same run: one epoch of attention-free fusion (the same per-source projections to
d_model, averaged over the present sources, a linear head; same rows, batch size, optimiser and device), so
the ratio is the cost of the transformer on top of reading every source.

    python benchmarks/bench_fuse.py                      # default fusion configuration
    python benchmarks/bench_fuse.py --config study-full  # the study's essential_lfc_full encoder sizes
    python benchmarks/bench_fuse.py --perts 500 --epochs 1   # a quick look
"""

from __future__ import annotations

import argparse
import time

import numpy as np

STUDY_SOURCE_DIMS = (
    4352, 384, 1024, 1280, 2304, 2304, 1024, 2048, 512, 128, 256, 640, 128, 256, 640, 512, 512,
    1536, 1536, 1536, 1536, 1536, 1536, 318, 256, 128, 256, 128, 512,
)
CELL_LINES = 4
GENES = 6640


def essential_sized(n_perts: int, seed: int = 0):
    from embhub.fuse.data import FusionData, SourceInfo

    rng = np.random.default_rng(seed)
    unique = int(n_perts * 1.25)
    present = rng.random((unique, len(STUDY_SOURCE_DIMS))) < rng.uniform(0.6, 1.0, len(STUDY_SOURCE_DIMS))
    present[:, 0] = True
    sources = [(rng.standard_normal((unique, d), dtype=np.float32) * present[:, [s]]) for s, d in enumerate(STUDY_SOURCE_DIMS)]
    row_pert = np.concatenate([rng.choice(unique, n_perts, replace=False) for _ in range(CELL_LINES)])
    n_rows = len(row_pert)
    return FusionData(
        dataset="essential-sized", dataset_id="synthetic", cell_lines=[f"line{i}" for i in range(CELL_LINES)],
        genes=np.array([f"G{g}" for g in range(GENES)]), pert_ids=np.array([f"P{i}" for i in range(unique)]),
        source_info=[SourceInfo(f"source{s}", "", "", d, int(present[:, s].sum())) for s, d in enumerate(STUDY_SOURCE_DIMS)],
        sources=sources, present=present, row_pert=row_pert,
        row_cell_line=np.repeat(np.arange(CELL_LINES), n_perts), row_fold=rng.integers(0, 5, n_rows),
        lfc=rng.standard_normal((n_rows, GENES), dtype=np.float32) * 0.1, deg=None, deg_mask=None,
    )


def mean_pool_epoch_seconds(data, rows: np.ndarray, config, device) -> float:
    """One epoch of the attention-free fusion: the same per-source projections, averaged over present sources."""
    import torch

    from embhub.fuse.train import DeviceData, task_loss

    tensors = DeviceData(data, device, "lfc")
    projections = torch.nn.ModuleList(torch.nn.Linear(m.shape[1], config.d_model) for m in data.sources).to(device)
    head = torch.nn.Linear(config.d_model, GENES).to(device)
    optimizer = torch.optim.Adam([*projections.parameters(), *head.parameters()], lr=config.lr)
    order = torch.as_tensor(rows, device=device)
    start = time.perf_counter()
    for batch in order[torch.randperm(len(order), device=device)].split(config.batch_size):
        sources, present, _, target = tensors.batch(batch)
        tokens = torch.stack([p(x) for p, x in zip(projections, sources)], 1) * present[:, :, None]
        pooled = tokens.sum(1) / present.sum(1, keepdim=True)
        loss = task_loss(head(pooled), target, "lfc", None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--perts", type=int, default=2000, help="perturbations per cell line (Essential: ~2,000)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--config", choices=("default", "study-full"), default="default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()

    import torch

    from embhub.accel import pick_device
    from embhub.fuse.config import default_config
    from embhub.fuse.splits import fold_rows
    from embhub.fuse.train import train_fusion

    if args.threads:
        torch.set_num_threads(args.threads)
    config = default_config("lfc").updated(max_epochs=args.epochs, patience=args.epochs)
    if args.config == "study-full":
        config = config.updated(n_layers=8, n_heads=10, gate=True, dropout=0.08364, head_layers=2, batch_size=32, lr=5.2791e-4)
    build = time.perf_counter()
    data = essential_sized(args.perts)
    rows = fold_rows(data, 0)
    device = pick_device(args.device)
    print(f"data: {data.n_rows} rows, {len(data.pert_ids)} unique perturbations, {len(data.sources)} sources "
          f"({sum(STUDY_SOURCE_DIMS)} dims), {GENES} genes; built in {time.perf_counter() - build:.1f} s")
    print(f"device {device}, torch threads {torch.get_num_threads()}, config {args.config}: {config.to_dict()}")
    trained = train_fusion(data, rows.fit, rows.validation, config, device=args.device)
    epochs = [h["seconds"] for h in trained.history]
    baseline = mean_pool_epoch_seconds(data, rows.fit, config, device)
    fusion = float(np.median(epochs))
    print(f"fit rows {len(rows.fit)}, validation rows {len(rows.validation)}, precision {trained.dtype}")
    print(f"fusion: {fusion:.2f} s per epoch (median of {len(epochs)}: {', '.join(f'{e:.2f}' for e in epochs)})")
    print(f"baseline mean-pooled projections (no attention): {baseline:.2f} s per epoch")
    print(f"ratio fusion / mean-pool baseline: {fusion / baseline:.2f}x")
    print(f"75 epochs (the study's limit) ≈ {75 * fusion / 60:.1f} min per fold and trial")


if __name__ == "__main__":
    main()
