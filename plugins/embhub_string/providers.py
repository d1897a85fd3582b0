"""STRING gene embeddings: a Laplacian eigenmap and a graph autoencoder of the thresholded network.

Both embed the genes of the largest connected component of the STRING network kept at
``min_score``; any other gene is a recorded failure saying why (not in the file, edges below the
threshold, in a small component). The graph embedding is computed once per provider instance, before
the store is created, and cached on disk under ``$EMBHUB_HOME/cache/string`` keyed by the network
files' sha256, the parameters and the gene-id release, so re-runs and resumed extractions reuse it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from embhub.checksums import sha256_file
from embhub.errors import InputError
from embhub.identity.genes import GENE_INPUT_COLUMNS, load_gene_identity, resolve_items
from embhub.paths import embhub_home
from embhub.provider import Embedded, Failure, Item, Provider

from embhub_string.network import STRING_LINKS, GeneNetwork, read_network, sibling_info_file

log = logging.getLogger("embhub.providers.string")

BUNDLED_DEMO = "bundled-demo"
STRING_V12 = "string-v12"
STRING_V12_FILES = ("9606.protein.links.v12.0.txt.gz", "9606.protein.info.v12.0.txt.gz")
STRING_DOWNLOADS = "https://stringdb-downloads.org/download/"
STRING_CITATION = (
    "Szklarczyk et al. (2023) The STRING database in 2023, Nucleic Acids Res. 51:D638 (data CC BY 4.0)"
)


def network_help() -> str:
    return (
        f"STRING links file (protein.links…txt.gz + its protein.info file, or a gene_a/gene_b/combined_score "
        f"edge list); '{STRING_V12}' = $EMBHUB_HOME/downloads/string/{STRING_V12_FILES[0]}; "
        f"'{BUNDLED_DEMO}' = embhub's small demo subgraph"
    )


def network_paths(network: str, protein_info: str) -> tuple[Path, Path | None]:
    """The files a ``network`` parameter names: (links or edge list, protein.info or None)."""
    if network == BUNDLED_DEMO:
        path = Path(str(files("embhub.datasets") / "demo_data" / "string_demo_edges.tsv.gz"))
        if not path.exists():
            raise InputError(f"the bundled demo STRING subgraph {path} is missing; reinstall embhub")
        return path, None
    if network == STRING_V12:
        folder = embhub_home() / "downloads" / "string"
        links, info = folder / STRING_V12_FILES[0], folder / STRING_V12_FILES[1]
        if not links.exists() or not info.exists():
            raise InputError(
                f"STRING v12 files are missing from {folder}; download {STRING_DOWNLOADS}protein.links.v12.0/"
                f"{STRING_V12_FILES[0]} and {STRING_DOWNLOADS}protein.info.v12.0/{STRING_V12_FILES[1]} there"
            )
        return links, info
    path = Path(network).expanduser()
    if not path.exists():
        raise InputError(f"STRING network file {path} does not exist; fix the model's 'network' parameter")
    if protein_info:
        return path, Path(protein_info).expanduser()
    return path, sibling_info_file(path) if STRING_LINKS.search(path.name) else None


class _StringProvider(Provider):
    """Shared by both STRING providers: reading the network, caching, and embedding by lookup."""

    entity = "gene"
    id_namespace = "gene"
    key_namespace = "ensembl_gene_id"
    licence = "STRING data CC BY 4.0; code Apache-2.0"
    requires: tuple[str, ...] = ("scipy",)
    input_columns = GENE_INPUT_COLUMNS
    default_batch_size = 4096

    def __init__(self, parameters: Any = None):
        super().__init__(parameters)
        self._network: GeneNetwork | None = None
        self._embedding: np.ndarray | None = None
        self._row: dict[str, int] = {}
        self._facts: dict[str, Any] = {}

    @property
    def dim(self) -> int:
        return self.parameters.dim

    def network_files(self) -> tuple[Path, Path | None]:
        return network_paths(self.parameters.network, self.parameters.protein_info)

    def network(self) -> GeneNetwork:
        """The largest connected component of the thresholded network (read once per instance)."""
        if self._network is None:
            links, info = self.network_files()
            full = read_network(links, self.parameters.min_score, load_gene_identity(), info)
            if full.n_nodes == 0 and full.edges_without_gene:
                examples = ", ".join(list(full.unresolved)[:3])
                raise InputError(
                    f"no edge of {links.name} scoring ≥ min_score {self.parameters.min_score} joins two known genes "
                    f"(names such as {examples} are not gene ids); give STRING's protein.links file with its "
                    "protein.info file, or an edge list of gene symbols or Ensembl ids"
                )
            if full.n_nodes == 0:
                raise InputError(
                    f"no edge of {links.name} scores ≥ min_score {self.parameters.min_score}; lower min_score"
                )
            self._network = full.largest_component()
            self._row = {gene: i for i, gene in enumerate(self._network.genes)}
            self._facts = _network_facts(full, self._network)
        return self._network

    def embedding(self) -> np.ndarray:
        """``(n_nodes, dim)`` vectors of :meth:`network`'s genes, computed once or read from the cache."""
        if self._embedding is None:
            network = self.network()
            cache = embhub_home() / "cache" / "string" / f"{self.name}-{self._cache_key()[:24]}.npz"
            if cache.exists():
                with np.load(cache, allow_pickle=False) as saved:
                    if list(saved["genes"]) == network.genes:
                        self._embedding = saved["embedding"]
                        self._facts.update(json.loads(str(saved["facts"])))
                        self._facts["embedding_cache"] = "reused"
            if self._embedding is None:
                self._embedding, facts = self.compute(network)
                self._facts.update(facts)
                cache.parent.mkdir(parents=True, exist_ok=True)
                partial = cache.with_suffix(".partial.npz")
                np.savez(partial, embedding=self._embedding, genes=np.array(network.genes), facts=json.dumps(facts))
                partial.replace(cache)
                self._facts["embedding_cache"] = "computed"
        return self._embedding

    def compute(self, network: GeneNetwork) -> tuple[np.ndarray, dict[str, Any]]:
        raise NotImplementedError

    def embed(self, items: Sequence[Item]) -> Embedded:
        identity = load_gene_identity()
        embedding = self.embedding()
        network = self.network()
        resolved, failures = resolve_items(items, identity)
        ids, keys, symbols, rows = [], [], [], []
        for item, resolution in resolved:
            row = self._row.get(resolution.ensembl_id)
            if row is None:
                reason = network.excluded.get(resolution.ensembl_id, "not in the STRING network file")
                failures.append(
                    Failure(item.input_id, f"gene '{item.value}' ({resolution.ensembl_id} {resolution.symbol}) "
                            f"is not embedded: {reason}")
                )
                continue
            ids.append(item.input_id)
            keys.append(resolution.ensembl_id)
            symbols.append(resolution.symbol)
            rows.append(row)
        vectors = embedding[rows] if rows else np.zeros((0, self.dim), np.float32)
        return Embedded(ids, keys, vectors, failures, labels={"symbol": symbols})

    def default_items(self) -> list[Item]:
        return [Item(input_id=gene, value=gene, row=None) for gene in self.network().genes]

    def checkpoint_files(self) -> list[Path]:
        """Computes (or reads from the cache) the embedding first, so a bad network or dim fails before a store
        is created."""
        self.embedding()
        return self._network_file_list()

    def _network_file_list(self) -> list[Path]:
        links, info = self.network_files()
        return [links] + ([info] if info else [])

    def provenance(self) -> dict[str, Any]:
        return {"gene_id_release": load_gene_identity().release, **self._facts}

    def _cache_key(self) -> str:
        digest = hashlib.sha256()
        for path in self._network_file_list():
            digest.update(sha256_file(path).encode())
        settings = {k: v for k, v in dataclasses.asdict(self.parameters).items() if k not in ("device",)}
        digest.update(json.dumps([self.name, self.version, settings, load_gene_identity().sha256], sort_keys=True).encode())
        return digest.hexdigest()


class StringSpectral(_StringProvider):
    name = "string-spectral"
    version = "1"
    citation = f"Belkin & Niyogi (2003) Laplacian eigenmaps, Neural Comput. 15:1373; {STRING_CITATION}"
    description = "Laplacian eigenmap of the STRING network's largest component (scipy sparse eigensolver)"

    @dataclass
    class Parameters:
        network: str = field(default=STRING_V12, metadata={"help": network_help()})
        protein_info: str = field(default="", metadata={"help": "protein.info file (default: next to the links file)"})
        min_score: int = field(default=700, metadata={"help": "keep edges with combined score ≥ this (0–1000)"})
        dim: int = field(default=128, metadata={"help": "embedding dimension (eigenvectors kept)"})
        tolerance: float = field(default=1e-6, metadata={"help": "eigensolver tolerance (large graphs)"})

        def __post_init__(self):
            _check_common(self)

    def compute(self, network: GeneNetwork) -> tuple[np.ndarray, dict[str, Any]]:
        from embhub_string.spectral import DENSE_LIMIT, laplacian_eigenmap

        if self.parameters.dim + 1 >= network.n_nodes:
            raise InputError(
                f"the network's largest component has {network.n_nodes} genes, too few for dim "
                f"{self.parameters.dim}; lower dim below {network.n_nodes - 1} or min_score"
            )
        log.info("eigenmap of %d genes, %d edges, dim %d", network.n_nodes, len(network.edges), self.parameters.dim)
        embedding = laplacian_eigenmap(network.adjacency(), self.parameters.dim, self.parameters.tolerance)
        dense = network.n_nodes <= max(DENSE_LIMIT, 4 * (self.parameters.dim + 1))
        solver = "scipy.linalg.eigh (dense)" if dense else "scipy.sparse.linalg.eigsh (ARPACK)"
        return embedding, {"method": "normalised-Laplacian eigenmap, edge weight = combined_score/1000", "solver": solver}


class StringGNN(_StringProvider):
    name = "string-gnn"
    version = "1"
    citation = f"Kipf & Welling (2016) Variational graph auto-encoders, arXiv:1611.07308; {STRING_CITATION}"
    description = "Graph autoencoder (2-layer GCN, link prediction with negative sampling) on the STRING network"
    requires = ("scipy", "torch")

    @dataclass
    class Parameters:
        network: str = field(default=STRING_V12, metadata={"help": network_help()})
        protein_info: str = field(default="", metadata={"help": "protein.info file (default: next to the links file)"})
        min_score: int = field(default=700, metadata={"help": "keep edges with combined score ≥ this (0–1000)"})
        dim: int = field(default=256, metadata={"help": "embedding dimension (GCN output)"})
        hidden_dim: int = field(default=256, metadata={"help": "width of the hidden GCN layer"})
        feature_dim: int = field(default=32, metadata={"help": "node features: this many eigenmap dimensions"})
        epochs: int = field(default=200, metadata={"help": "full-graph training epochs"})
        learning_rate: float = field(default=0.01, metadata={"help": "Adam learning rate"})
        negatives_per_edge: float = field(default=1.0, metadata={"help": "random non-edges scored per edge per epoch"})
        seed: int = field(default=0, metadata={"help": "seed of weights and negative sampling"})
        device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or mps"})

        def __post_init__(self):
            _check_common(self)
            for name in ("hidden_dim", "feature_dim", "epochs"):
                if getattr(self, name) < 1:
                    raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")

    def compute(self, network: GeneNetwork) -> tuple[np.ndarray, dict[str, Any]]:
        from embhub_string.gnn import TrainingSettings, train_graph_autoencoder
        from embhub_string.spectral import laplacian_eigenmap

        p = self.parameters
        features = laplacian_eigenmap(network.adjacency(), min(p.feature_dim, network.n_nodes - 2))
        settings = TrainingSettings(
            dim=p.dim, hidden_dim=p.hidden_dim, epochs=p.epochs, learning_rate=p.learning_rate,
            negatives_per_edge=p.negatives_per_edge, seed=p.seed, device=p.device,
        )
        log.info("training a graph autoencoder on %d genes, %d edges", network.n_nodes, len(network.edges))
        result = train_graph_autoencoder(network.edges, network.scores / 1000.0, features, settings, _log_epoch)
        every = max(1, p.epochs // 20)
        return result.embedding, {
            "method": "GCN graph autoencoder, dot-product decoder, uniform negative sampling; features = eigenmap",
            "training_device": result.device,
            "loss_by_epoch": {str(e): round(l, 5) for e, l in enumerate(result.losses, start=1) if e % every == 0 or e == 1},
        }


def _log_epoch(epoch: int, epochs: int, loss: float) -> None:
    """Ten progress lines per training at INFO; every epoch at DEBUG."""
    milestone = epoch == 1 or epoch == epochs or epoch % max(1, epochs // 10) == 0
    log.log(logging.INFO if milestone else logging.DEBUG, "epoch %d/%d loss %.4f", epoch, epochs, loss)


def _check_common(parameters) -> None:
    if not 0 <= parameters.min_score <= 1000:
        raise ValueError(f"min_score must be within 0–1000 (STRING units), got {parameters.min_score}")
    if parameters.dim < 1:
        raise ValueError(f"dim must be ≥ 1, got {parameters.dim}")


def _network_facts(full: GeneNetwork, kept: GeneNetwork) -> dict[str, Any]:
    unresolved = full.unresolved
    return {
        "network_edges_read": full.edges_read,
        "network_edges_below_min_score": full.edges_below_threshold,
        "network_edges_with_unresolved_gene": full.edges_without_gene,
        "network_genes": full.n_nodes,
        "network_edges": int(len(full.edges)),
        "largest_component_genes": kept.n_nodes,
        "largest_component_edges": int(len(kept.edges)),
        "genes_outside_largest_component": full.n_nodes - kept.n_nodes,
        "unresolved_network_names": len(unresolved),
        "unresolved_network_names_examples": dict(list(unresolved.items())[:20]),
    }
