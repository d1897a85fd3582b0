"""A SIMULATED CRISPRi screen in the exact Replogle h5ad layout, for demos and tests (no real data here).

Mechanism: the knock-down of gene k lowers k itself and spreads over the real STRING human subgraph bundled
with embhub (``demo_data/string_demo_edges.tsv.gz``) as a few steps of signed diffusion,

    Δ_c(k) = −s_{k,c} · ( κ e_k + ρ · u_c(k) / ‖u_c(k)‖ ),   u_c(k) = Σ_{t=1..T} α^{t−1} (S_c)^t e_k ,

(κ: on-target knock-down, ρ: size of the downstream response) where ``S_c`` is the symmetric-normalised signed adjacency whose edge weights are the STRING scores times a
cell-line-specific log-normal factor (signs, one per edge, are shared by the cell lines) and ``s_{k,c}`` a
knock-down efficiency. Genes close in the network therefore have similar responses, which is what network
embeddings can learn. Counts are negative binomial around ``library × softmax(baseline + Δ + GEM-group
effect)``; every cell line has its own baseline, and GEM groups add a per-gene batch shift.

The output file says it is simulated (``uns["embhub_simulated"]``) and so does every prepared manifest made
from it.
"""

from __future__ import annotations

import gzip
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

SIMULATED_NOTE = "SIMULATED screen (embhub datasets demo): not real data"
CELL_LINES = ("sim-K562", "sim-RPE1", "sim-HepG2", "sim-Jurkat")


@dataclass
class ScreenSpec:
    """Size and mechanism of the simulated screen; every field is recorded in the manifest."""

    cells: int = 30_000
    perturbations: int = 200
    cell_lines: int = 2
    gem_groups: int = 6
    control_fraction: float = 0.1
    seed: int = 0
    diffusion_steps: int = 8
    diffusion_alpha: float = 0.9
    knockdown_strength: float = 2.0
    downstream_norm: float = 10.0
    edge_weight_sd: float = 0.5
    negative_edge_fraction: float = 0.0
    batch_effect_sd: float = 0.03
    dispersion: float = 5.0
    mean_library: float = 6000.0


def demo_network_path() -> Path:
    return Path(str(resources.files("embhub.datasets") / "demo_data" / "string_demo_edges.tsv.gz"))


def load_demo_network() -> pd.DataFrame:
    """The bundled STRING subgraph: columns ``gene_a``, ``gene_b`` (HGNC symbols), ``combined_score`` (0–1000)."""
    with gzip.open(demo_network_path(), "rt") as handle:
        return pd.read_csv(handle, sep="\t")


def propagated_effects(
    edges: pd.DataFrame, genes: list[str], spec: ScreenSpec, rng: np.random.Generator
) -> list[np.ndarray]:
    """Per cell line, the log-scale effect matrix ``(n_genes, n_genes)``: column k = knock-down of gene k."""
    import scipy.sparse as sp

    index = {g: i for i, g in enumerate(genes)}
    a = edges["gene_a"].map(index).to_numpy()
    b = edges["gene_b"].map(index).to_numpy()
    score = edges["combined_score"].to_numpy() / 1000.0
    sign = np.where(rng.random(len(edges)) < spec.negative_edge_fraction, -1.0, 1.0)
    n = len(genes)
    effects = []
    for _ in range(spec.cell_lines):
        weight = score * rng.lognormal(0.0, spec.edge_weight_sd, len(edges))
        magnitude = sp.coo_matrix((np.r_[weight, weight], (np.r_[a, b], np.r_[b, a])), shape=(n, n)).tocsr()
        degree = np.asarray(magnitude.sum(axis=1)).ravel()
        scale = sp.diags(1.0 / np.sqrt(np.maximum(degree, 1e-12)))
        signed = sp.coo_matrix((np.r_[weight * sign, weight * sign], (np.r_[a, b], np.r_[b, a])), shape=(n, n)).tocsr()
        step = scale @ signed @ scale
        downstream = np.zeros((n, n))
        term = np.eye(n)
        for t in range(1, spec.diffusion_steps + 1):
            term = step @ term
            downstream += spec.diffusion_alpha ** (t - 1) * term
        np.fill_diagonal(downstream, 0.0)
        downstream *= spec.downstream_norm / np.maximum(np.linalg.norm(downstream, axis=0, keepdims=True), 1e-12)
        effects.append(-(spec.knockdown_strength * np.eye(n) + downstream))
    return effects


def simulate_screen(out: Path, spec: ScreenSpec | None = None) -> Path:
    """Write a simulated raw-count screen ``out`` (h5ad, Replogle layout) and return its path."""
    import anndata as ad
    import scipy.sparse as sp

    from embhub.identity.genes import load_gene_identity

    spec = spec or ScreenSpec()
    if not 1 <= spec.cell_lines <= len(CELL_LINES):
        raise ValueError(f"cell_lines must be 1..{len(CELL_LINES)}")
    rng = np.random.default_rng(spec.seed)
    edges = load_demo_network()
    identity = load_gene_identity()
    genes = sorted(set(edges["gene_a"]) | set(edges["gene_b"]))
    ensembl = {g: identity.resolve(g).ensembl_id for g in genes}
    genes = [g for g in genes if ensembl[g]]
    edges = edges[edges["gene_a"].isin(ensembl) & edges["gene_b"].isin(ensembl)]
    effects = propagated_effects(edges, genes, spec, rng)
    targets = np.sort(rng.choice(len(genes), size=min(spec.perturbations, len(genes)), replace=False))
    n_genes = len(genes)

    blocks, obs_frames = [], []
    per_line = spec.cells // spec.cell_lines
    for line_index in range(spec.cell_lines):
        baseline = rng.normal(0.0, 1.2, n_genes) + rng.normal(0.0, 0.3, n_genes) * line_index
        batch_shift = rng.normal(0.0, spec.batch_effect_sd, (spec.gem_groups, n_genes))
        efficiency = rng.uniform(0.5, 1.5, len(targets))
        is_control = rng.random(per_line) < spec.control_fraction
        guide = rng.integers(0, len(targets), per_line)
        gem = rng.integers(0, spec.gem_groups, per_line)
        log_mean = baseline[None, :] + batch_shift[gem]
        perturbed = ~is_control
        log_mean[perturbed] += (effects[line_index][:, targets[guide[perturbed]]] * efficiency[guide[perturbed]]).T
        weights = np.exp(log_mean - log_mean.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        library = rng.lognormal(np.log(spec.mean_library), 0.3, per_line)
        mean = weights * library[:, None]
        counts = rng.negative_binomial(spec.dispersion, spec.dispersion / (spec.dispersion + mean))
        blocks.append(sp.csr_matrix(counts.astype(np.float32)))
        symbol = np.where(is_control, "non-targeting", np.array(genes)[targets[guide]])
        obs_frames.append(
            pd.DataFrame(
                {
                    "gene": symbol,
                    "gene_id": np.where(is_control, "non-targeting", [ensembl.get(s, "") for s in symbol]),
                    "gem_group": gem + 1 + line_index * spec.gem_groups,
                    "cell_line": CELL_LINES[line_index],
                    "is_control": is_control,
                }
            )
        )
    obs = pd.concat(obs_frames, ignore_index=True)
    obs.index = [f"cell{i}" for i in range(len(obs))]
    for column in ("gene", "gene_id", "cell_line"):
        obs[column] = obs[column].astype("category")
    var = pd.DataFrame({"gene_name": genes}, index=[ensembl[g] for g in genes])
    adata = ad.AnnData(X=sp.vstack(blocks).tocsr(), obs=obs, var=var)
    adata.uns["embhub_simulated"] = {"note": SIMULATED_NOTE, **{k: v for k, v in asdict(spec).items()}}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(out)
    return out
