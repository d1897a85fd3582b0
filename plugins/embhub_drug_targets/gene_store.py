"""Finding the gene store a target-based drug embedding reads, and the rows of a drug's targets in it.

A gene store is named by a path or by the registry name of the gene model that wrote it: stores
that ``embhub extract --model NAME`` wrote live under ``$EMBHUB_HOME/stores/NAME/``. Target ids
(symbols or Ensembl ids) go through the gene identity layer to the Ensembl ids gene stores are keyed
by; a store keyed otherwise is matched on its keys and its ``symbol`` label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embhub.errors import StoreError
from embhub.identity.genes import load_gene_identity
from embhub.paths import default_store_dir
from embhub.store import EmbeddingStore, list_stores

DEFAULT_ITEMS_SOURCE = "provider default items"


def locate_gene_store(name_or_path: str) -> EmbeddingStore:
    """The complete gene store at a path, or the one store the gene model ``name_or_path`` wrote.

    Several stores of one model are resolved in favour of the single one built from the model's
    default items (e.g. every node of a network); otherwise the user is asked for a path.
    """
    if not name_or_path:
        raise StoreError("parameter gene_store is empty; give a gene model name or a gene store path")
    path = Path(name_or_path).expanduser()
    if path.exists():
        store = EmbeddingStore.open(path)
    else:
        store = _store_of_model(name_or_path)
    if store.entity != "gene":
        raise StoreError(f"store {store.path} embeds {store.entity}s, not genes; give a gene store as gene_store")
    return store


def _store_of_model(name: str) -> EmbeddingStore:
    directory = default_store_dir() / name
    stores = []
    for path in list_stores(directory):
        try:
            stores.append(EmbeddingStore.open(path))
        except StoreError:
            continue
    if not stores:
        raise StoreError(
            f"no complete gene store named '{name}' (looked for a path and in {directory}); "
            f"run 'embhub extract --model {name}' first (with --input GENES listing the drugs' targets, for a model "
            "without default genes such as random-gene-100) or give a store path"
        )
    if len(stores) > 1:
        defaults = [s for s in stores if s.manifest.get("inputs", {}).get("source") == DEFAULT_ITEMS_SOURCE]
        if len(defaults) != 1:
            listed = ", ".join(str(s.path) for s in stores)
            raise StoreError(f"gene model '{name}' has {len(stores)} stores ({listed}); give one of them as gene_store")
        stores = defaults
    return stores[0]


@dataclass
class TargetIndex:
    """Rows of a gene store by key, by upper-case symbol, and the identity layer's resolutions."""

    store: EmbeddingStore
    vectors: np.ndarray
    row_of_key: dict[str, int]
    row_of_symbol: dict[str, int]
    identity_release: str

    def row_of(self, target: str) -> int | None:
        """The store row of a target id, or None when the store has no vector for it."""
        text = target.strip()
        candidates = [text]
        resolution = load_gene_identity().resolve(text)
        if resolution.resolved:
            candidates = [resolution.ensembl_id, text, resolution.symbol]
        for candidate in candidates:
            if candidate in self.row_of_key:
                return self.row_of_key[candidate]
        for candidate in candidates:
            if candidate and candidate.upper() in self.row_of_symbol:
                return self.row_of_symbol[candidate.upper()]
        return None


def build_target_index(store: EmbeddingStore) -> TargetIndex:
    """Load the store's vectors ``(n_genes, dim)`` once and index its rows."""
    ids = list(store.ids)
    symbols: dict[str, int] = {}
    if "symbol" in store.label_names():
        for row, symbol in enumerate(store.labels("symbol")):
            if symbol:
                symbols.setdefault(symbol.upper(), row)
    return TargetIndex(
        store=store,
        vectors=store.vectors(),
        row_of_key={key: row for row, key in enumerate(ids)},
        row_of_symbol=symbols,
        identity_release=load_gene_identity().release,
    )
