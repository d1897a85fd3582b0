"""Import the reference study's own preprocessed task files (HuggingFace ``genbio-ai/foundation-models-perturbation``).

Layouts (``benchmark-protocol-details.md`` §9): X is the dense ``(n_perturbations, G)`` LFC matrix, or int8
−1/0/+1 for DEG files; obs columns per dataset:

- essential: ``gene_id``, ``cell_line``, ``test_split`` (``essential_pseudobulk_deltas_all_perts.h5ad``,
  ``essential_deg_with_split.h5ad``), LFC file also ``symbol``;
- norman: ``gene_id``, ``test_split`` (``norman_pseudobulk_deltas.h5ad``), one cell line, K-562;
- sciplex3: ``drug``, ``cell_line``, ``dose``, ``fold_0..fold_4`` (``"test"`` marks the test fold);
- tahoe: ``cell_line``, ``drug``, ``pubchem_cid``, ``canonical_smiles``, ``fold_0..fold_4`` and the drug
  metadata (``targets``, ``moa-broad``, ``moa-fine``, approval fields).

The first file is the LFC file; an optional second is the DEG file, matched on (perturbation, cell line).
The study's folds are kept exactly. Cell and batch counts are not in these files and are stored as −1.
Tahoe's SMILES are kept as ``smiles`` and ``inchikey`` aliases and its drug metadata as annotations, as
``embhub datasets prepare tahoe`` stores them, so stores keyed by InChIKey match; rows without a CID are
left out and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from embhub.datasets.prepared import PreparedDataset, PreparedDatasetWriter
from embhub.errors import InputError
from embhub.locks import sole_writer


@dataclass(frozen=True)
class StudyLayout:
    entity: str
    key_namespace: str
    key_column: str
    label_column: str
    default_cell_line: str | None = None
    smiles_column: str | None = None
    annotation_columns: tuple[str, ...] = ()


LAYOUTS = {
    "essential": StudyLayout("gene", "ensembl_gene_id", "gene_id", "symbol"),
    "norman": StudyLayout("gene", "ensembl_gene_id", "gene_id", "symbol", default_cell_line="K-562"),
    "sciplex3": StudyLayout("drug", "drug_name", "drug", "drug"),
    "tahoe": StudyLayout(
        "drug", "pubchem_cid", "pubchem_cid", "drug", smiles_column="canonical_smiles",
        annotation_columns=("targets", "moa-broad", "moa-fine", "human-approved", "clinical-trials", "gpt-notes-approval"),
    ),
}
NO_CID = "rows without a PubChem CID"


def import_study_files(name: str, files: Sequence[Path], out: Path | None = None) -> PreparedDataset:
    """Write a prepared dataset from the study's LFC file (and DEG file), keeping its folds."""
    from embhub.datasets.prepare import default_output

    if name not in LAYOUTS:
        raise InputError(f"no study layout for '{name}' (known: {', '.join(LAYOUTS)})")
    if not 1 <= len(files) <= 2:
        raise InputError("give the study's LFC file and optionally its DEG file")
    layout = LAYOUTS[name]
    files = [Path(f) for f in files]
    for path in files:
        if not path.exists():
            raise InputError(f"file {path} does not exist")
    out = Path(out) if out else default_output(name)
    with sole_writer(out, "import"):
        return _write_study_files(name, layout, files, out)


def _write_study_files(name: str, layout: StudyLayout, files: list[Path], out: Path) -> PreparedDataset:
    import anndata as ad

    from embhub.checksums import sha256_file

    lfc = ad.read_h5ad(files[0])
    deg = ad.read_h5ad(files[1]) if len(files) == 2 else None
    lfc_rows = _rows(lfc, layout, files[0])
    gene_ids, symbols = _genes(lfc.var)
    manifest = {
        "dataset": name,
        "recipe": name,
        "kind": "study-preprocessed",
        "entity": layout.entity,
        "key_namespace": layout.key_namespace,
        "description": f"{name} as preprocessed and split by the reference study (Cole et al. 2026)",
        "inputs": [{"path": str(p.resolve()), "sha256": sha256_file(p), "bytes": p.stat().st_size} for p in files],
        "protocol": {"source": "study files; folds from the files", "n_cells": "unknown (-1)"},
    }
    writer = PreparedDatasetWriter(out, manifest, gene_ids, symbols)
    exclusions: dict[str, int] = {}
    unkeyed = lfc_rows["pert_id"] == ""
    if unkeyed.any():
        exclusions[NO_CID] = int(unkeyed.sum())
        lfc_rows = lfc_rows[~unkeyed]
    deg_rows = _rows(deg, layout, files[1]) if deg is not None else None
    deg_matrix = _aligned_deg(deg, gene_ids, exclusions) if deg is not None else None
    for line in sorted(lfc_rows["cell_line"].unique()):
        rows = lfc_rows[lfc_rows["cell_line"] == line].sort_values("pert_id")
        duplicated = rows["pert_id"].duplicated()
        if duplicated.any():
            raise InputError(
                f"{files[0]}: perturbation '{rows['pert_id'][duplicated].iloc[0]}' appears twice in {line}"
            )
        x = _dense(lfc.X, rows.index.to_numpy())
        labels, mask = None, None
        if deg_matrix is not None:
            matched = deg_rows[deg_rows["cell_line"] == line].drop_duplicates("pert_id").set_index("pert_id")["row"]
            position = matched.reindex(rows["pert_id"]).to_numpy()
            mask = ~pd.isna(position)
            labels = np.zeros(x.shape, dtype=np.int8)
            labels[mask] = deg_matrix[position[mask].astype(int)]
            unmatched = len(matched) - int(mask.sum())
            if unmatched:
                exclusions[f"{line}: DEG rows without an LFC row"] = unmatched
        n = len(rows)
        writer.add_cell_line(
            line, rows["pert_id"], rows["pert_label"], rows["fold"], x, np.full(n, -1), np.full(n, -1), labels, mask,
            aliases=_aliases(lfc.obs, layout, rows.index.to_numpy()),
            annotations=_annotations(lfc.obs, layout, rows.index.to_numpy()),
        )
    return writer.finish(exclusions=exclusions)


def _rows(adata, layout: StudyLayout, path: Path) -> pd.DataFrame:
    obs = adata.obs
    if layout.key_column not in obs:
        raise InputError(
            f"{path}: obs has no column '{layout.key_column}'; is this the study's {layout.key_namespace} file?"
        )
    if "cell_line" in obs:
        lines = obs["cell_line"].astype(str).to_numpy()
    elif layout.default_cell_line:
        lines = np.full(len(obs), layout.default_cell_line)
    else:
        raise InputError(f"{path}: obs has no column 'cell_line'")
    keys = obs[layout.key_column]
    if layout.key_namespace == "pubchem_cid":
        numbers = pd.to_numeric(pd.Series(keys.to_numpy()), errors="coerce")
        keys = pd.Series(["" if pd.isna(v) else str(int(v)) for v in numbers])
    keys = keys.astype(str).to_numpy()
    if "dose" in obs and layout.key_namespace == "drug_name":
        labels = keys
    else:
        labels = obs[layout.label_column].astype(str).to_numpy() if layout.label_column in obs else keys
    return pd.DataFrame(
        {
            "pert_id": keys,
            "pert_label": labels,
            "cell_line": lines,
            "fold": _folds(obs, path),
            "row": np.arange(len(obs)),
        }
    )


def _aliases(obs: pd.DataFrame, layout: StudyLayout, rows: np.ndarray) -> dict[str, list[str]] | None:
    """``smiles`` and ``inchikey`` (rdkit; "" where a SMILES does not parse or rdkit is missing) of ``rows``, if
    the file has SMILES."""
    from embhub.identity.drugs import inchikey_of

    if layout.smiles_column is None or layout.smiles_column not in obs:
        return None
    smiles = [_text(value) for value in obs[layout.smiles_column].to_numpy()[rows]]
    return {"smiles": smiles, "inchikey": [inchikey_of(value) for value in smiles]}


def _annotations(obs: pd.DataFrame, layout: StudyLayout, rows: np.ndarray) -> dict[str, list[str]] | None:
    """The descriptive columns of ``rows`` the file has (Tahoe: targets, moa-broad, moa-fine, approval)."""
    present = [c for c in layout.annotation_columns if c in obs]
    return {c: [_text(v) for v in obs[c].to_numpy()[rows]] for c in present} or None


def _text(value) -> str:
    return "" if pd.isna(value) else str(value)


def _folds(obs: pd.DataFrame, path: Path) -> np.ndarray:
    if "test_split" in obs:
        return obs["test_split"].astype(int).to_numpy()
    columns = [f"fold_{k}" for k in range(5)]
    if all(c in obs for c in columns):
        tests = np.stack([obs[c].astype(str).to_numpy() == "test" for c in columns], axis=1)
        if (tests.sum(axis=1) > 1).any():
            raise InputError(f"{path}: a row is the test row of several folds")
        return np.where(tests.any(axis=1), tests.argmax(axis=1), -1)
    raise InputError(f"{path}: obs has neither 'test_split' nor fold_0..fold_4; is this the study's task file?")


def _genes(var: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    ids = (
        var["ensembl_gene_id"].astype(str).to_numpy() if "ensembl_gene_id" in var else var.index.astype(str).to_numpy()
    )
    for column in ("symbol", "gene_name", "gene_symbol"):
        if column in var:
            return ids, var[column].astype(str).to_numpy()
    return ids, var.index.astype(str).to_numpy()


def _aligned_deg(deg, gene_ids: np.ndarray, exclusions: dict[str, int]) -> np.ndarray:
    deg_ids, _ = _genes(deg.var)
    matrix = _dense(deg.X, np.arange(deg.n_obs)).astype(np.int8)
    position = pd.Index(deg_ids).get_indexer(gene_ids)
    missing = int((position < 0).sum())
    if missing:
        exclusions["LFC genes absent from the DEG file (labelled 0)"] = missing
    aligned = np.zeros((matrix.shape[0], len(gene_ids)), dtype=np.int8)
    aligned[:, position >= 0] = matrix[:, position[position >= 0]]
    return aligned


def _dense(x, rows: np.ndarray) -> np.ndarray:
    part = x[rows]
    return np.asarray(part.todense() if hasattr(part, "todense") else part)
