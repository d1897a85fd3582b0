"""Small raw files in the real public layouts, and a straightforward in-memory reference computation.

The reference works on the whole dense matrix with pandas/scipy, one obvious step at a time, so it shares
no code with the streaming implementation it checks.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats


def replogle_file(path: Path, seed: int = 0, lines=("K-562", "hTERT-RPE1"), n_genes: int = 40) -> Path:
    """Replogle/Essential layout: obs gene, gene_id, gem_group, cell_line, is_control; var by Ensembl id."""
    rng = np.random.default_rng(seed)
    genes = [f"ENSG{100000 + i:011d}" for i in range(n_genes)]
    symbols = [f"G{i}" for i in range(n_genes)]
    rows = []
    for line in lines:
        for gem in (1, 2, 3):
            rows += [(line, gem, "non-targeting", "non-targeting", True)] * 25
        # perturbation sizes straddle the >30-cell DEG filter; P3 lives only in gem group 1
        for target, sizes in ((0, (15, 14, 12)), (1, (5, 6, 4)), (2, (20, 0, 20)), (3, (12, 0, 0))):
            for gem, size in zip((1, 2, 3), sizes):
                rows += [(line, gem, symbols[target], genes[target], False)] * size
    obs = pd.DataFrame(rows, columns=["cell_line", "gem_group", "gene", "gene_id", "is_control"])
    obs.index = [f"c{i}" for i in range(len(obs))]
    base = rng.gamma(2.0, 2.0, n_genes)
    target_index = obs["gene_id"].map({g: i for i, g in enumerate(genes)}).fillna(-1).astype(int).to_numpy()
    mean = np.tile(base, (len(obs), 1)) * rng.lognormal(0, 0.4, (len(obs), 1))
    hit = target_index >= 0
    mean[hit, target_index[hit]] *= 0.2
    mean *= 1 + 0.3 * (obs["gem_group"].to_numpy()[:, None] == 2)
    counts = rng.poisson(mean).astype(np.float32)
    counts[0] = 0
    var = pd.DataFrame({"gene_name": symbols}, index=genes)
    ad.AnnData(sp.csr_matrix(counts), obs=obs, var=var).write_h5ad(path)
    return path


def log_cp10k(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(totals > 0, counts / totals * 1e4, 0.0)
    return np.log1p(scaled)


def reference_pooled(path: Path) -> dict[str, dict]:
    """Essential protocol by hand: gem-group means, unweighted over gem groups, minus the global control."""
    adata = ad.read_h5ad(path)
    x = log_cp10k(np.asarray(adata.X.todense(), dtype=np.float64))
    obs = adata.obs
    out = {}
    for line in obs["cell_line"].unique():
        in_line = (obs["cell_line"] == line).to_numpy()
        frame = pd.DataFrame(x[in_line])
        meta = obs[in_line]
        control = meta["is_control"].to_numpy()
        control_profile = frame[control].groupby(meta["gem_group"].to_numpy()[control]).mean().mean(axis=0).to_numpy()
        responses, degs, cells = {}, {}, {}
        for gene_id in sorted(meta.loc[~control, "gene_id"].unique()):
            mine = (meta["gene_id"] == gene_id).to_numpy()
            batch_means = frame[mine].groupby(meta["gem_group"].to_numpy()[mine]).mean()
            responses[gene_id] = batch_means.mean(axis=0).to_numpy() - control_profile
            cells[gene_id] = int(mine.sum())
            if mine.sum() > 30:
                t, p = stats.ttest_ind(x[in_line][mine], x[in_line][control], equal_var=False)
                t = np.nan_to_num(t, nan=0.0)
                p = np.where(np.isnan(p), 1.0, p)
                degs[gene_id] = np.sign(t) * (bh_by_hand(p) < 0.05)
        out[line] = {"lfc": responses, "deg": degs, "cells": cells}
    return out


def bh_by_hand(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg the textbook way: q_(i) = min_{j ≥ i} p_(j) m / j."""
    m = len(p)
    order = np.argsort(p)
    q = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):
        running = min(running, p[order[rank - 1]] * m / rank)
        q[order[rank - 1]] = running
    return q


def reference_ceiling_pooled(path: Path, line: str, n_outer: int = 10, n_inner: int = 10, seed: int = 5050):
    """Two-stage bootstrap by hand on the dense matrix: {pert_id: (replicate L2 errors,)} and the quantiles."""
    adata = ad.read_h5ad(path)
    x = log_cp10k(np.asarray(adata.X.todense(), dtype=np.float64))
    obs = adata.obs.reset_index(drop=True)
    mine = obs[obs["cell_line"] == line]

    def batches(frame):
        return [
            frame.index[frame["gem_group"].astype(str) == g].to_numpy()
            for g in sorted(frame["gem_group"].astype(str).unique())
        ]

    def bootstrap(batch_rows, sequence):
        means = np.zeros((n_outer, n_inner, x.shape[1]))
        for i, child in enumerate(sequence.spawn(n_outer)):
            rng = np.random.default_rng(child)
            drawn = rng.integers(0, len(batch_rows), len(batch_rows)) if len(batch_rows) > 1 else [0]
            for b, grandchild in zip(drawn, child.spawn(len(drawn))):
                cell_rng = np.random.default_rng(grandchild)
                rows = batch_rows[b]
                draws = cell_rng.integers(0, len(rows), (n_inner, len(rows)))
                for k in range(n_inner):
                    means[i, k] += x[rows[draws[k]]].mean(axis=0) / len(drawn)
        return means.reshape(n_outer * n_inner, -1)

    def point(batch_rows):
        return np.mean([x[rows].mean(axis=0) for rows in batch_rows], axis=0)

    root = np.random.SeedSequence(seed)
    control_rows = batches(mine[mine["is_control"]])
    control_boot = bootstrap(control_rows, root.spawn(1)[0])
    perts = sorted(mine.loc[~mine["is_control"], "gene_id"].astype(str).unique())
    out = {}
    for pert, sequence in zip(perts, root.spawn(len(perts))):
        rows = batches(mine[mine["gene_id"].astype(str) == pert])
        truth = point(rows) - point(control_rows)
        errors = np.linalg.norm(bootstrap(rows, sequence) - control_boot - truth, axis=1)
        out[pert] = np.quantile(errors, (0.1, 0.2, 0.5, 0.8, 0.9, 0.99, 0.995))
    return out


def normalised(counts: np.ndarray, panel: np.ndarray, library: str) -> np.ndarray:
    """log1p CP10k over ``panel`` columns with the library summed over the panel or all genes."""
    sub = counts[:, panel]
    totals = (sub if library == "panel" else counts).sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log1p(np.where(totals > 0, sub / totals * 1e4, 0.0))


def vote_by_hand(calls: list[np.ndarray]) -> np.ndarray:
    """Majority vote per gene with the study's tie table."""
    ties = {(0, 1): 1, (-1, 0): -1, (-1, 1): 0, (-1, 0, 1): 0}
    stacked = np.stack(calls)
    out = np.zeros(stacked.shape[1], dtype=int)
    for g in range(stacked.shape[1]):
        values, counts = np.unique(stacked[:, g], return_counts=True)
        best = tuple(sorted(int(v) for v in values[counts == counts.max()]))
        out[g] = best[0] if len(best) == 1 else ties[best]
    return out


def reference_plate_matched(x_lfc, x_deg, cells: pd.DataFrame, min_cells: int = 20):
    """Plate-matched responses and plate-vote DEG by hand. ``cells``: cell_line, batch, pert, is_control, keep, counted."""
    out = {}
    for line in sorted(cells["cell_line"].unique()):
        mine = cells[(cells["cell_line"] == line)]
        kept = mine[mine["keep"]]
        controls = kept[kept["is_control"]]
        responses, degs, batches = {}, {}, {}
        for pert in sorted(kept.loc[~kept["is_control"], "pert"].unique()):
            rows = kept[kept["pert"] == pert]
            diffs, calls, used = [], [], []
            for plate in sorted(rows["batch"].unique()):
                ctrl = controls.index[controls["batch"] == plate].to_numpy()
                if len(ctrl) == 0:
                    continue
                here = rows.index[rows["batch"] == plate].to_numpy()
                used.append(plate)
                diffs.append(x_lfc[here].mean(axis=0) - x_lfc[ctrl].mean(axis=0))
                n_counted = (
                    (mine["counted"]) & (mine["compound"] == rows["compound"].iloc[0]) & (mine["batch"] == plate)
                ).sum()
                n_vehicle = (mine["counted"] & mine["is_control"] & (mine["batch"] == plate)).sum()
                if n_counted > min_cells and n_vehicle > min_cells:  # the study's > 20 cells holds for the vehicle too
                    t, p = stats.ttest_ind(x_deg[here], x_deg[ctrl], equal_var=False)
                    t = np.nan_to_num(t, nan=0.0)
                    p = np.where(np.isnan(p), 1.0, p)
                    calls.append((np.sign(t) * (bh_by_hand(p) < 0.05)).astype(int))
            if not diffs:
                continue
            responses[pert] = np.mean(diffs, axis=0)
            batches[pert] = used
            if calls:
                degs[pert] = vote_by_hand(calls)
        out[line] = {"lfc": responses, "deg": degs, "batches": batches}
    return out


def reference_ceiling_plate(x, cells: pd.DataFrame, line: str, n_outer=10, n_inner=20, seed=5050):
    """Plate-matched bootstrap by hand: per drawn plate, drug resample mean minus the plate's control resample mean."""
    mine = cells[(cells["cell_line"] == line) & cells["keep"]]
    controls = mine[mine["is_control"]]
    root = np.random.SeedSequence(seed)
    root.spawn(1)
    with_controls = mine[~mine["is_control"] & mine["batch"].isin(controls["batch"].unique())]
    perts = sorted(with_controls["pert"].unique())
    out = {}
    for pert, sequence in zip(perts, root.spawn(len(perts))):
        rows = mine[mine["pert"] == pert]
        plates = [p for p in sorted(rows["batch"].unique()) if (controls["batch"] == p).any()]
        groups = [rows.index[rows["batch"] == p].to_numpy() for p in plates]
        ctrls = [controls.index[controls["batch"] == p].to_numpy() for p in plates]
        truth = np.mean([x[g].mean(0) - x[c].mean(0) for g, c in zip(groups, ctrls)], axis=0)
        boot = np.zeros((n_outer, n_inner, x.shape[1]))
        for i, child in enumerate(sequence.spawn(n_outer)):
            rng = np.random.default_rng(child)
            drawn = rng.integers(0, len(plates), len(plates)) if len(plates) > 1 else [0]
            for b, grandchild in zip(drawn, child.spawn(len(drawn))):
                cell_rng = np.random.default_rng(grandchild)
                g, c = groups[b], ctrls[b]
                pick_g = cell_rng.integers(0, len(g), (n_inner, len(g)))
                pick_c = cell_rng.integers(0, len(c), (n_inner, len(c)))
                for k in range(n_inner):
                    boot[i, k] += (x[g[pick_g[k]]].mean(0) - x[c[pick_c[k]]].mean(0)) / len(drawn)
        errors = np.linalg.norm(boot.reshape(n_outer * n_inner, -1) - truth, axis=1)
        out[pert] = np.quantile(errors, (0.1, 0.2, 0.5, 0.8, 0.9, 0.99, 0.995))
    return out


def tahoe_plate_files(directory: Path, seed: int = 0, n_genes: int = 30):
    """Three per-plate Tahoe files; returns (paths, gene-list path, counts (all cells, all genes), standard cell table)."""
    rng = np.random.default_rng(seed)
    symbols = [f"GENE{i}" for i in range(n_genes)]
    plan = {
        # (cell line, plate): [(drug, cid, dose, n)]
        ("CVCL_0023", "plate1"): [
            ("DMSO_TF", None, 0.0, 30),
            ("DrugA", 101, 5.0, 25),
            ("DrugB", 202, 5.0, 12),
            ("DrugA", 101, 0.5, 9),
        ],
        ("CVCL_0023", "plate2"): [("DMSO_TF", None, 0.0, 28), ("DrugA", 101, 5.0, 22), ("DrugB", 202, 5.0, 24)],
        ("CVCL_0480", "plate1"): [
            ("DMSO_TF", None, 0.0, 26),
            ("DrugA", 101, 5.0, 30),
            ("DrugB", 202, 5.0, 8),
            ("DrugB", 202, 0.5, 15),
        ],
        ("CVCL_0480", "plate2"): [("DrugC", 303, 5.0, 21), ("DrugB", 202, 5.0, 21)],
        ("CVCL_1571", "plate2"): [("DMSO_TF", None, 0.0, 5), ("DrugA", 101, 5.0, 5)],
        # too few vehicle cells (≤ 20) for the plate's DEG test: responses use the plate, the vote does not
        ("CVCL_0023", "plate3"): [("DMSO_TF", None, 0.0, 12), ("DrugA", 101, 5.0, 24), ("DrugB", 202, 5.0, 23)],
    }
    base = rng.gamma(2.0, 2.0, n_genes)
    effect = {
        "DMSO_TF": 1.0,
        "DrugA": rng.lognormal(0, 0.8, n_genes),
        "DrugB": rng.lognormal(0, 0.5, n_genes),
        "DrugC": 2.0,
    }
    paths, all_counts, all_cells = [], [], []
    for plate in ("plate1", "plate2", "plate3"):
        rows = []
        for (line, p), entries in plan.items():
            if p != plate:
                continue
            for drug, cid, dose, n in entries:
                rows += [(line, plate, drug, cid, dose)] * n
        obs = pd.DataFrame(rows, columns=["cell_line", "plate", "drug", "pubchem_cid", "dose"])
        obs["drugname_drugconc"] = [f"[('{d}', {c}, 'uM')]" for d, c in zip(obs["drug"], obs["dose"])]
        obs["pass_filter"] = np.where(rng.random(len(obs)) < 0.05, "minimal", "full")
        obs["canonical_smiles"] = obs["drug"].map(
            {"DMSO_TF": "CS(C)=O", "DrugA": "CCO", "DrugB": "c1ccccc1O", "DrugC": "CC(=O)O"}
        )
        plate_effect = {"plate1": 1.0, "plate2": 1.3, "plate3": 0.8}[plate]
        mean = np.stack([base * np.asarray(effect[d]) * plate_effect for d in obs["drug"]])
        counts = rng.poisson(mean * rng.lognormal(0, 0.3, (len(obs), 1))).astype(np.float32)
        obs.index = [f"{plate}_{i}" for i in range(len(obs))]
        path = directory / f"{plate}.h5ad"
        ad.AnnData(sp.csr_matrix(counts), obs=obs.drop(columns="dose"), var=pd.DataFrame(index=symbols)).write_h5ad(
            path
        )
        paths.append(path)
        all_counts.append(counts)
        dropped_line = obs["cell_line"] == "CVCL_1571"
        all_cells.append(
            pd.DataFrame(
                {
                    "cell_line": obs["cell_line"].to_numpy(),
                    "batch": plate,
                    "pert": np.where(
                        obs["drug"] == "DMSO_TF", "", obs["pubchem_cid"].astype(str).str.replace(".0", "", regex=False)
                    ),
                    "compound": obs["drug"].to_numpy(),
                    "is_control": (obs["drug"] == "DMSO_TF").to_numpy(),
                    "keep": (
                        (obs["pass_filter"] == "full")
                        & ~dropped_line
                        & ((obs["dose"] == 5.0) | (obs["drug"] == "DMSO_TF"))
                    ).to_numpy(),
                    "counted": ((obs["pass_filter"] == "full") & ~dropped_line).to_numpy(),
                    "passed": (obs["pass_filter"] == "full").to_numpy(),
                }
            )
        )
    gene_list = directory / "tahoe_coding_non_mt_genes.txt"
    gene_list.write_text("\n".join(symbols[: n_genes - 5]) + "\n")
    return paths, gene_list, np.vstack(all_counts).astype(np.float64), pd.concat(all_cells, ignore_index=True)


def sciplex_files(directory: Path, seed: int = 1, n_genes: int = 25, drugs=("Dex", "SAHA (Vorinostat)")):
    """The four GEO GSM4150378 files (+ BioMart list); returns (paths, counts, standard cell table, panel).

    The first drug also has cells at 100 nM (left out) and fewer cells on plate P02; the others 25 per plate.
    """
    rng = np.random.default_rng(seed)
    rows = []
    first, *others = drugs
    for line in ("A549", "MCF7"):
        for plate in ("P01", "P02"):
            rows += [(line, plate, "Vehicle", 0.0)] * 24
            rows += [(line, plate, first, 10000.0)] * (22 if plate == "P01" else 14)
            rows += [(line, plate, first, 100.0)] * 8
            for drug in others:
                rows += [(line, plate, drug, 10000.0)] * 25
    pdata = pd.DataFrame(rows, columns=["cell_type", "plate_oligo", "product_name", "dose"])
    pdata["cell"] = [f"cell{i:04d}" for i in range(len(pdata))]
    base = rng.gamma(2.0, 1.5, n_genes)
    scale = {"Vehicle": 1.0, **{drug: rng.lognormal(0, 0.7, n_genes) for drug in drugs}}
    counts = np.stack(
        [rng.poisson(base * np.asarray(scale[d]) * rng.lognormal(0, 0.3)) for d in pdata["product_name"]]
    ).astype(float)
    gene_rows, cell_rows = np.nonzero(counts.T)
    triplets = pd.DataFrame({"g": gene_rows + 1, "c": cell_rows + 1, "n": counts.T[gene_rows, cell_rows].astype(int)})
    triplets = triplets.sample(frac=1.0, random_state=0)
    paths = [
        directory / "GSM4150378_sciPlex3_A549_MCF7_K562_screen_UMI.count.matrix",
        directory / "GSM4150378_sciPlex3_A549_MCF7_K562_screen_gene.annotations.txt",
        directory / "GSM4150378_sciPlex3_A549_MCF7_K562_screen_cell.annotations.txt",
        directory / "GSM4150378_sciPlex3_pData.txt",
        directory / "mart_export_protein_coding.txt",
    ]
    triplets.to_csv(paths[0], sep="\t", header=False, index=False)
    genes = pd.DataFrame({"id": [f"ENSG{i:011d}" for i in range(n_genes)], "name": [f"S{i}" for i in range(n_genes)]})
    genes.to_csv(paths[1], sep="\t", header=False, index=False)
    pd.DataFrame({"cell": pdata["cell"], "sample": "s"}).to_csv(paths[2], sep="\t", header=False, index=False)
    pdata.sample(frac=1.0, random_state=1).to_csv(paths[3], sep="\t", index=False)
    panel = np.arange(0, n_genes, 2)
    pd.DataFrame({"Gene stable ID": genes["id"][panel], "Gene name": genes["name"][panel]}).to_csv(
        paths[4], sep="\t", index=False
    )
    cells = pd.DataFrame(
        {
            "cell_line": pdata["cell_type"],
            "batch": pdata["plate_oligo"],
            "pert": np.where(pdata["product_name"] == "Vehicle", "", pdata["product_name"]),
            "compound": pdata["product_name"],
            "is_control": pdata["product_name"] == "Vehicle",
            "keep": (pdata["dose"] == 10000.0) | (pdata["product_name"] == "Vehicle"),
            "counted": True,
        }
    )
    return paths, counts, cells, panel


def norman_files(directory: Path, seed: int = 2, n_genes: int = 30, no_ensembl: tuple[str, ...] = ()):
    """scPerturb NormanWeissman2019_filtered.h5ad + GEARS perturb_processed.h5ad; returns paths, counts, cells, panel.
    Symbols in ``no_ensembl`` have a missing ``ensemble_id`` in the scPerturb var (the cells' ``pert`` still names
    the Ensembl id they would have had)."""
    rng = np.random.default_rng(seed)
    symbols = [f"N{i}" for i in range(n_genes)]
    ensembl = [f"ENSG{500 + i:011d}" for i in range(n_genes)]
    rows = []
    for gem in (1, 2, 3):
        rows += [("control", 0, gem)] * 20
        rows += (
            [("N0", 1, gem)] * 12 + [("N1", 1, gem)] * (8 + gem) + [("N0_N1", 2, gem)] * 5 + [("C19orf26", 1, gem)] * 4
        )
    obs = pd.DataFrame(rows, columns=["perturbation", "nperts", "gemgroup"])
    obs.index = [f"c{i}" for i in range(len(obs))]
    base = rng.gamma(2.0, 2.0, n_genes)
    counts = rng.poisson(
        base
        * rng.lognormal(0, 0.3, (len(obs), 1))
        * (1 + (obs["perturbation"] == "N0").to_numpy()[:, None] * rng.random(n_genes))
    ).astype(np.float32)
    var = pd.DataFrame(
        {"ensemble_id": pd.Categorical([np.nan if s in no_ensembl else e for s, e in zip(symbols, ensembl)])}, index=symbols
    )
    paths = [directory / "NormanWeissman2019_filtered.h5ad", directory / "perturb_processed.h5ad"]
    ad.AnnData(sp.csr_matrix(counts), obs=obs, var=var).write_h5ad(paths[0])
    panel = np.arange(3, n_genes)
    gears_obs = pd.DataFrame({"condition": ["ctrl", "N0+ctrl"]}, index=["a", "b"])
    ad.AnnData(
        np.zeros((2, len(panel)), dtype=np.float32), obs=gears_obs, var=pd.DataFrame(index=np.array(ensembl)[panel])
    ).write_h5ad(paths[1])
    pert = obs["perturbation"].map({"N0": ensembl[0], "N1": ensembl[1], "C19orf26": "ENSG00000099625"}).fillna("")
    cells = pd.DataFrame(
        {
            "cell_line": "K-562",
            "batch": obs["gemgroup"].astype(str).to_numpy(),
            "pert": pert.to_numpy(),
            "compound": pert.to_numpy(),
            "is_control": (obs["nperts"] == 0).to_numpy(),
            "keep": (obs["nperts"] <= 1).to_numpy(),
            "counted": (obs["nperts"] <= 1).to_numpy(),
        }
    )
    return paths, counts.astype(np.float64), cells, panel


def reference_ceiling_global(x, cells: pd.DataFrame, line: str, n_outer=10, n_inner=10, seed=5050):
    """Essential-style bootstrap by hand on a standard cell table (shared control bootstrap, global point estimate)."""
    mine = cells[(cells["cell_line"] == line) & cells["keep"]]

    def batches(frame):
        return [frame.index[frame["batch"] == b].to_numpy() for b in sorted(frame["batch"].unique())]

    def bootstrap(batch_rows, sequence):
        means = np.zeros((n_outer, n_inner, x.shape[1]))
        for i, child in enumerate(sequence.spawn(n_outer)):
            rng = np.random.default_rng(child)
            drawn = rng.integers(0, len(batch_rows), len(batch_rows)) if len(batch_rows) > 1 else [0]
            for b, grandchild in zip(drawn, child.spawn(len(drawn))):
                rows = batch_rows[b]
                draws = np.random.default_rng(grandchild).integers(0, len(rows), (n_inner, len(rows)))
                for k in range(n_inner):
                    means[i, k] += x[rows[draws[k]]].mean(axis=0) / len(drawn)
        return means.reshape(n_outer * n_inner, -1)

    root = np.random.SeedSequence(seed)
    control_rows = batches(mine[mine["is_control"]])
    control_boot = bootstrap(control_rows, root.spawn(1)[0])
    control_point = np.mean([x[r].mean(0) for r in control_rows], axis=0)
    perts = sorted(mine.loc[~mine["is_control"], "pert"].unique())
    out = {}
    for pert, sequence in zip(perts, root.spawn(len(perts))):
        rows = batches(mine[mine["pert"] == pert])
        truth = np.mean([x[r].mean(0) for r in rows], axis=0) - control_point
        errors = np.linalg.norm(bootstrap(rows, sequence) - control_boot - truth, axis=1)
        out[pert] = np.quantile(errors, (0.1, 0.2, 0.5, 0.8, 0.9, 0.99, 0.995))
    return out


def macro_f1_by_hand(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Per gene, F1 of each class present in the gene's true labels, averaged over them; mean over genes."""
    per_gene = []
    for g in range(truth.shape[1]):
        scores = []
        for c in np.unique(truth[:, g]):
            tp = np.sum((truth[:, g] == c) & (predicted[:, g] == c))
            fp = np.sum((truth[:, g] != c) & (predicted[:, g] == c))
            fn = np.sum((truth[:, g] == c) & (predicted[:, g] != c))
            scores.append(2 * tp / (2 * tp + fp + fn))
        per_gene.append(np.mean(scores))
    return float(np.mean(per_gene))


def welch_calls_by_hand(group: np.ndarray, reference: np.ndarray) -> np.ndarray:
    t, p = stats.ttest_ind(group, reference, equal_var=False)
    return (np.sign(np.nan_to_num(t, nan=0.0)) * (bh_by_hand(np.where(np.isnan(p), 1.0, p)) < 0.05)).astype(int)


def fold_f1_quantiles(replicate_calls, truth: dict, folds: dict, n_folds=5, quantiles=(0.1, 0.5)):
    """Quantiles over replicates of each fold's F1 (NaN for folds without labelled perturbations)."""
    scores = np.full((len(replicate_calls), n_folds), np.nan)
    for r, calls in enumerate(replicate_calls):
        for fold in range(n_folds):
            perts = [p for p in sorted(truth) if folds[p] == fold]
            if perts:
                scores[r, fold] = macro_f1_by_hand(
                    np.stack([truth[p] for p in perts]), np.stack([calls[p] for p in perts])
                )
    return np.quantile(scores, quantiles, axis=0).T


def reference_deg_ceiling_pooled(path: Path, line: str, truth: dict, folds: dict, n_trials=20, seed=5050):
    """Essential DEG noise floor by hand: each trial resamples every labelled perturbation's cells and the
    line's controls (duplicated rows, dense matrix), re-runs scipy's Welch test + BH, scores F1 per fold."""
    adata = ad.read_h5ad(path)
    x = log_cp10k(np.asarray(adata.X.todense(), dtype=np.float64))
    obs = adata.obs.reset_index(drop=True)
    mine = obs[obs["cell_line"] == line]
    controls = mine.index[mine["is_control"].to_numpy()].to_numpy()
    replicates = []
    for trial in np.random.SeedSequence(seed).spawn(n_trials):
        rng = np.random.default_rng(trial)
        drawn_controls = controls[rng.integers(0, len(controls), len(controls))]
        calls = {}
        for pert in sorted(truth):
            rows = mine.index[(mine["gene_id"].astype(str) == pert).to_numpy()].to_numpy()
            drawn = rows[rng.integers(0, len(rows), len(rows))]
            calls[pert] = welch_calls_by_hand(x[drawn], x[drawn_controls])
        replicates.append(calls)
    return fold_f1_quantiles(replicates, truth, folds)


def reference_deg_ceiling_plate(
    x, cells, line, truth: dict, folds: dict, min_cells=20, n_outer=3, n_inner=3, seed=5050
):
    """Plate-vote DEG noise floor by hand: per outer draw each drug's tested plates are resampled, then per
    inner draw every tested plate's controls and each drawn plate's drug cells; per-plate Welch, vote, F1."""
    mine = cells[cells["cell_line"] == line]
    kept = mine[mine["keep"]]
    control_rows = {b: kept.index[kept["is_control"] & (kept["batch"] == b)].to_numpy() for b in kept["batch"].unique()}
    tested = {}
    for pert in sorted(truth):
        rows = kept[kept["pert"] == pert]
        compound = rows["compound"].iloc[0]
        tested[pert] = [
            b
            for b in sorted(rows["batch"].unique())
            if (mine["counted"] & mine["is_control"] & (mine["batch"] == b)).sum() > min_cells
            and ((mine["counted"]) & (mine["compound"] == compound) & (mine["batch"] == b)).sum() > min_cells
        ]
    plates = sorted({b for bs in tested.values() for b in bs})
    replicates = []
    for outer in np.random.SeedSequence(seed).spawn(n_outer):
        rng = np.random.default_rng(outer)
        drawn = {}
        for pert in sorted(truth):
            options = tested[pert]
            picks = rng.integers(0, len(options), len(options)) if len(options) > 1 else [0]
            drawn[pert] = [options[i] for i in picks]
        for _ in range(n_inner):
            controls = {b: control_rows[b][rng.integers(0, len(control_rows[b]), len(control_rows[b]))] for b in plates}
            calls = {}
            for pert in sorted(truth):
                votes = []
                for b in drawn[pert]:
                    rows = kept.index[(kept["pert"] == pert) & (kept["batch"] == b)].to_numpy()
                    votes.append(welch_calls_by_hand(x[rows[rng.integers(0, len(rows), len(rows))]], x[controls[b]]))
                calls[pert] = vote_by_hand(votes)
            replicates.append(calls)
    return fold_f1_quantiles(replicates, truth, folds)


TAHOE_DRUGS = {
    # drug: (pubchem_cid, canonical_smiles, targets, moa-broad, moa-fine)
    "DMSO_TF": (679.0, "CS(C)=O", None, "unclear", "unclear"),
    "DrugA": (101.0, "CCO", "EGFR, ERBB2", "inhibitor", "EGFR inhibitor"),
    "DrugB": (202.0, "c1ccccc1O", "TUBB", "inhibitor", "Tubulin inhibitor"),
    "DrugC": (303.0, "CC(=O)O", None, "unclear", "unclear"),
}


def tahoe_metadata_files(directory: Path, symbols) -> tuple[Path, Path]:
    """``gene_metadata.parquet`` and ``drug_metadata.parquet`` in the Tahoe-100M release's column layout."""
    genes = pd.DataFrame(
        {
            "gene_symbol": list(symbols),
            "ensembl_id": [f"ENSG{900000 + i:011d}" for i in range(len(symbols))],
            "token_id": np.arange(len(symbols)) + 3,
        }
    )
    drugs = pd.DataFrame(
        [(name, *values) for name, values in TAHOE_DRUGS.items()],
        columns=["drug", "pubchem_cid", "canonical_smiles", "targets", "moa-broad", "moa-fine"],
    )
    drugs["human-approved"] = ["yes", "no", "yes", "no"]
    drugs["clinical-trials"] = "no"
    drugs["gpt-notes-approval"] = ""
    drugs = drugs[
        ["drug", "targets", "moa-broad", "moa-fine", "human-approved", "clinical-trials", "gpt-notes-approval",
         "canonical_smiles", "pubchem_cid"]
    ]
    paths = directory / "gene_metadata.parquet", directory / "drug_metadata.parquet"
    genes.to_parquet(paths[0], index=False)
    drugs.to_parquet(paths[1], index=False)
    return paths
