"""What an embedding provider is: declared metadata plus one batched ``embed`` method.

Everything else (reading inputs, batching to disk, resuming, progress, the manifest) is the core's
job, written once in :mod:`embhub.extract`. A provider module must stay cheap to import: load
models and heavy libraries lazily, inside ``embed``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

ENTITY_KINDS = ("gene", "drug")
"""Entity kinds embhub's datasets understand. Providers may declare others (``cell``, ``protein``…)."""

NAMESPACES = {
    "smiles": "a SMILES string",
    "inchikey": "an InChIKey",
    "drug_name": "a drug name",
    "hgnc_symbol": "an HGNC gene symbol",
    "ensembl_gene_id": "an Ensembl gene id (ENSG…)",
    "gene": "any gene id the identity layer resolves (symbol, alias, Ensembl, Entrez, UniProt)",
}
"""Identifier namespaces with a fixed meaning. Providers may declare others; document them."""


@dataclass(frozen=True)
class Item:
    """One thing to embed.

    ``input_id`` is the user's id (unique within an input list, kept in the store); ``value`` is
    what the provider reads (a SMILES, a gene symbol…); ``row`` is its 1-based line in the input
    file, used in messages.
    """

    input_id: str
    value: str
    row: int | None = None


@dataclass(frozen=True)
class Failure:
    """An item the provider could not embed, and why (one line, naming the item)."""

    input_id: str
    reason: str


@dataclass
class Embedded:
    """The result of embedding one batch.

    ``vectors[i]`` (shape ``(n_embedded, dim)``) embeds the item ``input_ids[i]`` under the canonical
    key ``keys[i]`` (an InChIKey, an Ensembl gene id…). ``labels`` maps a label name to one string per
    embedded row (``symbol``, ``canonical_smiles``…). Every item of the batch must appear exactly
    once, in ``input_ids`` or in ``failures``. ``counts`` are this batch's tallies (``unknown_tokens``…):
    the store's provenance reports each summed over the batches, counting every batch once even when an
    extraction was interrupted and resumed in another process — which a counter kept by the provider
    and reported in :meth:`Provider.provenance` cannot do.
    """

    input_ids: list[str]
    keys: list[str]
    vectors: np.ndarray
    failures: list[Failure] = field(default_factory=list)
    labels: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


class Provider:
    """Base class of embedding providers.

    Subclasses set the class attributes below (read without instantiating, so listing providers is
    free), declare their parameters as a nested ``Parameters`` dataclass (every field needs a
    default; ``field(metadata={"help": ...})`` documents it), and implement :meth:`embed`.
    Registry entries become ``Provider(Provider.Parameters(**parameters))``.
    """

    name: ClassVar[str]
    entity: ClassVar[str]
    id_namespace: ClassVar[str]
    """What ``Item.value`` holds (a key of :data:`NAMESPACES` or a documented name of your own)."""
    key_namespace: ClassVar[str]
    """What the store's ids are (e.g. ``inchikey`` or ``ensembl_gene_id``)."""
    version: ClassVar[str] = "0"
    licence: ClassVar[str] = "unknown"
    citation: ClassVar[str] = ""
    description: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()
    """Importable modules the provider needs to embed; ``embhub models`` reports whether they are."""
    input_columns: ClassVar[tuple[str, ...]] = ("value",)
    """Column names (case-insensitive) that hold ``Item.value`` in a CSV/TSV input table."""
    default_batch_size: ClassVar[int] = 256

    @dataclass
    class Parameters:
        pass

    def __init__(self, parameters: Any = None):
        self.parameters = parameters if parameters is not None else self.Parameters()

    @property
    def dim(self) -> int | None:
        """Output dimension if known before embedding; ``None`` when only the first batch tells."""
        return None

    def embed(self, items: Sequence[Item]) -> Embedded:
        """Embed one batch. Never raise for one bad item: report it in ``Embedded.failures``."""
        raise NotImplementedError

    def default_items(self) -> list[Item] | None:
        """The items to embed when the user gives no input (e.g. every node of a graph), else None."""
        return None

    def checkpoint_files(self) -> list[Path]:
        """Local files that determine the vectors (weights, graph files); their sha256 go in the manifest."""
        return []

    def provenance(self) -> dict[str, Any]:
        """Extra facts for the manifest (id-map release, canonicalisation rule, device used…)."""
        return {}

    def missing_packages(self) -> list[str]:
        """:meth:`missing_requirements` plus packages these parameters need (e.g. one that ships the weights)."""
        return self.missing_requirements()

    @classmethod
    def parameter_fields(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls.Parameters))

    @classmethod
    def missing_requirements(cls) -> list[str]:
        """Modules in ``requires`` that are not importable here; for ``a.b`` the missing one of ``a`` and ``a.b``."""
        return [missing for missing in map(missing_module, cls.requires) if missing]


def missing_module(module: str) -> str | None:
    """The first package of the dotted name ``module`` that is not importable, or None if it is."""
    parts = module.split(".")
    for end in range(1, len(parts) + 1):
        name = ".".join(parts[:end])
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):
            return name
    return None
