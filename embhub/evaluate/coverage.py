"""Matching an embedding store to a dataset's perturbations, and saying how much of it is covered.

A store is refused (one-line :class:`~embhub.errors.StoreError`) when its entity differs from the
dataset's, when its keys cannot be matched to the dataset's id namespace, when its ids repeat, when a
vector the evaluation needs holds NaN or inf, or when it covers none of the dataset's perturbations.
Gene keys in another namespace (symbols, Entrez…) are mapped to Ensembl ids through the gene identity
layer; the number mapped and the ids it could not map are reported, never dropped silently. Where several
store ids map to one gene (``CREBBP`` and ``crebbp``, a symbol and its alias), the closest match wins — the
Ensembl id itself, then the gene's approved symbol as written, then the other kinds in the identity layer's
lookup order — and the others are reported as superseded; ids that tie and hold different vectors are
refused. Drug stores
keyed otherwise than the dataset (InChIKey stores on Tahoe's CIDs) are matched through the prepared
dataset's `pert_aliases` for the store's namespace; drugs still unmatched then meet the store's
``drug_name:<name>`` keys (drugs a store knows only by name, as drug-targets keys them) through the
dataset's `drug_name` aliases, or the names themselves when the dataset is keyed by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from embhub.errors import InputError, StoreError
from embhub.evaluate.results import manifest_id

ENSEMBL = "ensembl_gene_id"


@dataclass
class AlignedStore:
    """A store's vectors for the dataset perturbations it covers, keyed by the dataset's perturbation ids."""

    name: str
    path: str
    store_id: str
    dim: int
    key_namespace: str
    vectors: dict[str, np.ndarray]
    harmonised: int = 0
    unmapped: list[str] = field(default_factory=list)
    superseded: list[tuple[str, str]] = field(default_factory=list)
    """(store id, the store id used instead): ids that mapped to a gene another, closer id also maps to."""

    def covers(self, pert_ids: Sequence[str]) -> np.ndarray:
        """Which of ``pert_ids`` have a vector: a mask ``(n,)``."""
        return np.array([pid in self.vectors for pid in pert_ids], dtype=bool)

    def rows(self, pert_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(covered mask ``(n,)``, vectors ``(n_covered, dim)`` float64) for ``pert_ids`` in order."""
        covered = self.covers(pert_ids)
        if not covered.any():
            return covered, np.zeros((0, self.dim))
        return covered, np.stack([self.vectors[pid] for pid, c in zip(pert_ids, covered) if c]).astype(np.float64)


def _to_ensembl(keys: Sequence[str]) -> list[str | None]:
    from embhub.identity.genes import load_gene_identity

    ident = load_gene_identity()
    return [r.ensembl_id if r.status == "resolved" else None for r in ident.resolve_many(keys)]


MATCH_CLOSENESS = ("ensembl", "approved symbol as written", "symbol", "entrez", "uniprot", "previous_symbol", "alias")


def _gene_matches(store: Any, store_keys: list[str]) -> list[tuple[str, int] | None]:
    """Per store key, ``(Ensembl id, closeness)`` — the index in :data:`MATCH_CLOSENESS` of how it matched,
    lower is closer — or None where the identity layer cannot resolve it."""
    if store.key_namespace == ENSEMBL:
        return [(key, 0) for key in store_keys]
    from embhub.identity.genes import load_gene_identity

    matches: list[tuple[str, int] | None] = []
    for key, found in zip(store_keys, load_gene_identity().resolve_many(store_keys)):
        if not found.resolved:
            matches.append(None)
        elif key == found.ensembl_id or key == found.symbol:
            matches.append((found.ensembl_id, 0 if key == found.ensembl_id else 1))
        else:
            kind = found.matched_by if found.matched_by in MATCH_CLOSENESS else "alias"
            matches.append((found.ensembl_id, MATCH_CLOSENESS.index(kind)))
    return matches


def _row_of_each_gene(store: Any, store_keys: list[str], matches: list[tuple[str, int] | None],
                      label: str) -> tuple[dict[str, int], list[tuple[int, int]]]:
    """``({Ensembl id: store row}, [(superseded row, row used instead)])``: each gene's closest store id."""
    rows_of_gene: dict[str, list[int]] = {}
    for row, match in enumerate(matches):
        if match is not None:
            rows_of_gene.setdefault(match[0], []).append(row)
    chosen: dict[str, int] = {}
    superseded: list[tuple[int, int]] = []
    for gene, rows in rows_of_gene.items():
        rows = sorted(rows, key=lambda row: matches[row][1])
        chosen[gene] = rows[0]
        if len(rows) == 1:
            continue
        tied = [row for row in rows if matches[row][1] == matches[rows[0]][1]]
        if len(tied) > 1:
            vectors = np.asarray(store.vectors(np.array(tied, dtype=np.int64)))
            differing = [row for row, v in zip(tied[1:], vectors[1:]) if not np.array_equal(v, vectors[0], equal_nan=True)]
            if differing:
                raise StoreError(
                    f"{label}: the ids '{store_keys[tied[0]]}' and '{store_keys[differing[0]]}' both name gene {gene} "
                    "and hold different vectors; keep one of them (re-import the store without the other)"
                )
        superseded += [(row, rows[0]) for row in rows[1:]]
    return chosen, superseded


def _perturbation_aliases(dataset: Any, namespace: str) -> dict[str, str]:
    """Dataset key → its id in ``namespace`` (e.g. a Tahoe CID → InChIKey), from the prepared aliases."""
    aliases: dict[str, str] = {}
    for line in dataset.cell_lines:
        data = dataset.cell_line(line)
        values = data.pert_aliases(namespace)
        if values is None:
            continue
        for pert_id, alias in zip(data.pert_ids, values):
            if alias:
                aliases.setdefault(str(pert_id), str(alias))
    return aliases


def _name_keys(dataset: Any, pert_ids: Sequence[str]) -> dict[str, str]:
    """Dataset key → the drug's ``drug_name:<name>`` key: its stored alias, or from the key itself."""
    from embhub.identity.drugs import drug_name_key

    keys = _perturbation_aliases(dataset, "drug_name")
    if dataset.key_namespace == "drug_name":
        for pid in pert_ids:
            keys.setdefault(pid, drug_name_key(pid))
    return keys


def _drug_rows(store: Any, dataset: Any, store_keys: list[str], dataset_keys: list[str], label: str):
    """``({dataset key: store row}, how many matched through an alias or name key)`` for a drug store."""
    row_of_key = {key: row for row, key in enumerate(store_keys)}
    same = store.key_namespace == dataset.key_namespace
    aliases = {} if same else _perturbation_aliases(dataset, store.key_namespace)
    name_keys = _name_keys(dataset, dataset_keys)
    if not same and not aliases and not name_keys:
        raise StoreError(
            f"{label} is keyed by {store.key_namespace} but dataset '{dataset.name}' by "
            f"{dataset.key_namespace} and stores no {store.key_namespace} aliases; "
            f"extract or import the store with {dataset.key_namespace} keys"
        )
    wanted: dict[str, int] = {}
    harmonised = 0
    for pid in dict.fromkeys(dataset_keys):
        key = pid if same else aliases.get(pid)
        if key not in row_of_key:
            key = name_keys.get(pid)
        if key in row_of_key:
            wanted[pid] = row_of_key[key]
            harmonised += key != pid
    return wanted, harmonised


def align_store(store: Any, dataset: Any, pert_ids: Sequence[str]) -> AlignedStore:
    """Check ``store`` (an :class:`~embhub.store.EmbeddingStore`) against ``dataset`` and collect the
    vectors of ``pert_ids`` (every perturbation of the evaluated cell lines)."""
    label = f"store '{store.name}' ({store.path})"
    if store.entity != dataset.entity:
        raise StoreError(
            f"{label} holds {store.entity} embeddings but dataset '{dataset.name}' perturbs {dataset.entity}s; "
            f"choose a {dataset.entity} store"
        )
    store_keys = [str(k) for k in store.ids]
    seen: set[str] = set()
    for key in store_keys:
        if key in seen:
            raise StoreError(f"{label} has the id '{key}' more than once; re-import it with unique ids")
        seen.add(key)
    dataset_keys = [str(p) for p in pert_ids]
    harmonised = 0
    unmapped: list[str] = []
    superseded: list[tuple[str, str]] = []
    if dataset.entity != "gene":
        wanted, harmonised = _drug_rows(store, dataset, store_keys, dataset_keys, label)
    elif store.key_namespace != dataset.key_namespace:
        matches = _gene_matches(store, store_keys)
        mapped_dataset = dataset_keys if dataset.key_namespace == ENSEMBL else _to_ensembl(dataset_keys)
        unmapped = [k for k, m in zip(store_keys, matches) if m is None]
        harmonised = sum(1 for k, m in zip(store_keys, matches) if m is not None and m[0] != k)
        row_of_ensembl, superseded_rows = _row_of_each_gene(store, store_keys, matches, label)
        superseded = [(store_keys[row], store_keys[kept]) for row, kept in superseded_rows]
        wanted = {pid: row_of_ensembl.get(ens) for pid, ens in zip(dataset_keys, mapped_dataset) if ens is not None}
        wanted = {pid: row for pid, row in wanted.items() if row is not None}
    else:
        row_of_key = {key: row for row, key in enumerate(store_keys)}
        wanted = {pid: row_of_key[pid] for pid in dataset_keys if pid in row_of_key}
    if not wanted:
        example_store = store_keys[0] if store_keys else "none"
        example_dataset = dataset_keys[0] if dataset_keys else "none"
        raise StoreError(
            f"{label} covers none of the {len(set(dataset_keys))} perturbations of dataset '{dataset.name}' "
            f"(store ids look like '{example_store}', dataset ids like '{example_dataset}'); "
            f"use a store of {dataset.key_namespace} keys"
        )
    pids = list(wanted)
    rows = np.array([wanted[p] for p in pids], dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    block = np.asarray(store.vectors(rows[order]), dtype=np.float64)
    vectors = np.empty_like(block)
    vectors[order] = block
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        bad = pids[int(np.argmin(finite))]
        raise StoreError(
            f"{label}: the vector of '{store_keys[wanted[bad]]}' contains NaN or inf; fix or re-extract the store "
            "('embhub stores verify' lists such rows)"
        )
    if len(vectors) > 1 and (vectors == vectors[0]).all():
        raise StoreError(
            f"{label} gives all {len(vectors)} perturbations it covers the same vector, so it cannot tell them apart "
            "(every neighbour would tie); check its extraction and re-extract it"
        )
    return AlignedStore(
        name=store.name,
        path=str(Path(store.path).absolute()),
        store_id=manifest_id(store.manifest),
        dim=int(vectors.shape[1]),
        key_namespace=store.key_namespace,
        vectors={pid: vectors[i] for i, pid in enumerate(pids)},
        harmonised=harmonised,
        unmapped=unmapped,
        superseded=superseded,
    )


def refuse_stores_given_twice(stores: Sequence[Any]) -> None:
    """One line when a store (same store id: a path twice, ``path/``, a model name and its path) is given twice;
    it would count as two stores of one source. ``stores``: anything with ``name``, ``path`` and ``store_id``."""
    first_of: dict[str, Any] = {}
    for store in stores:
        if store.store_id in first_of:
            other = first_of[store.store_id]
            where = store.path if store.path == other.path else f"{other.path} and {store.path}"
            raise InputError(f"store '{store.name}' is given twice ({where}); give each store once")
        first_of[store.store_id] = store


def coverage_rows(aligned: AlignedStore, cell_line: str, pert_ids: Sequence[str]) -> dict[str, Any]:
    """One coverage record: how many of a cell line's perturbations the store has a vector for."""
    covered = int(aligned.covers(pert_ids).sum())
    total = len(pert_ids)
    return {
        "embedding": aligned.name,
        "store_path": aligned.path,
        "store_id": aligned.store_id,
        "cell_line": cell_line,
        "n_perturbations": total,
        "n_covered": covered,
        "fraction": covered / total if total else float("nan"),
        "harmonised_ids": aligned.harmonised,
        "unmapped_store_ids": len(aligned.unmapped),
        "superseded_store_ids": len(aligned.superseded),
    }


def resolve_store_paths(names: Sequence[str], store_dir: Path) -> list[Path]:
    """Store paths for ``--stores``: an existing path as given, else the newest complete store of that
    model under ``store_dir/<model>/``."""
    from embhub.store import open_store_group, list_stores

    paths = []
    for name in names:
        path = Path(name)
        if path.exists():
            paths.append(path)
            continue
        candidates = []
        for candidate in list_stores(store_dir / name):
            try:
                _, manifest = open_store_group(candidate)
            except StoreError:
                continue
            if manifest.get("complete"):
                candidates.append((str(manifest.get("completed") or ""), candidate.stat().st_mtime, candidate))
        if not candidates:
            raise StoreError(
                f"no store '{name}': not a path and no complete store of model '{name}' under {store_dir}; "
                f"run 'embhub extract --model {name}' or give the store's path"
            )
        paths.append(max(candidates)[2])
    return paths


def all_store_paths(store_dir: Path, entity: str) -> tuple[list[Path], list[str]]:
    """``--all``: every complete store of ``entity`` under ``store_dir`` (and why the others were skipped)."""
    from embhub.store import open_store_group, list_stores

    chosen, skipped = [], []
    for candidate in list_stores(store_dir):
        try:
            _, manifest = open_store_group(candidate)
        except StoreError as exc:
            skipped.append(f"{candidate}: {exc}")
            continue
        if not manifest.get("complete"):
            skipped.append(f"{candidate}: incomplete")
        elif manifest.get("entity") != entity:
            skipped.append(f"{candidate}: {manifest.get('entity')} store")
        else:
            chosen.append(candidate)
    return chosen, skipped
