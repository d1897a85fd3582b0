"""GenePT-style gene embeddings: a text describing each gene, embedded by a sentence encoder.

GenePT (Chen & Zou 2024) embeds each gene's NCBI summary with a text-embedding model. This provider does
the same with any sentence-transformers encoder, from NCBI summaries the user supplies
(``ncbi_summaries: PATH``) or, offline by default, from descriptions built out of the shipped NCBI Gene
+ GO table (:mod:`embhub_genept.gene_text`). GenePT's published vectors can be imported as a store
instead (:mod:`embhub_genept.genept_file`, ``embhub stores import-genept``). torch is imported only when
embedding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from embhub.hookspecs import hookimpl
from embhub.identity.genes import GENE_INPUT_COLUMNS
from embhub.provider import Embedded, Failure, Item, Provider, missing_module

from embhub_genept.text_encoder import BUNDLED_MINILM, BUNDLED_MINILM_PACKAGE


class GenePTEmbeddings(Provider):
    name = "genept"
    entity = "gene"
    id_namespace = "gene"
    key_namespace = "ensembl_gene_id"
    version = "1"
    licence = (
        "texts: NCBI Gene (public domain) and GO (CC BY 4.0); encoder: its own licence "
        "(all-MiniLM-L6-v2: Apache-2.0, packaged MIT)"
    )
    citation = (
        "Chen & Zou (2024) GenePT: a simple but effective foundation model for genes and cells built from ChatGPT, "
        "bioRxiv 10.1101/2023.10.16.562533; Reimers & Gurevych (2019) Sentence-BERT, EMNLP; "
        "Gene Ontology Consortium (2023) Genetics 224:iyad031"
    )
    description = "sentence-encoder embedding of a text describing each gene (NCBI summary or name + GO terms)"
    requires = ("torch", "sentence_transformers")
    input_columns = GENE_INPUT_COLUMNS
    default_batch_size = 512

    @dataclass
    class Parameters:
        encoder: str = field(
            default=BUNDLED_MINILM,
            metadata={"help": "sentence-transformers directory or hub name; bundled-minilm = all-MiniLM-L6-v2"},
        )
        ncbi_summaries: str = field(
            default="", metadata={"help": "TSV of gene id (Entrez/symbol/Ensembl) → summary; empty = shipped GO text"}
        )
        fallback_to_go: bool = field(
            default=False, metadata={"help": "with ncbi_summaries: describe genes lacking a summary by name + GO terms"}
        )
        max_go_terms: int = field(default=10, metadata={"help": "GO terms per ontology in the offline text"})
        normalize: bool = field(default=False, metadata={"help": "scale each vector to unit length"})
        encode_batch_size: int = field(default=64, metadata={"help": "texts per encoder forward pass"})
        device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps"})
        precision: str = field(default="auto", metadata={"help": "auto (bf16/fp16 on GPU, fp32 on CPU), fp32, fp16, bf16"})

        def __post_init__(self):
            if self.max_go_terms < 0:
                raise ValueError(f"max_go_terms must be ≥ 0, got {self.max_go_terms}")
            if self.encode_batch_size < 1:
                raise ValueError(f"encode_batch_size must be ≥ 1, got {self.encode_batch_size}")

    def __init__(self, parameters: Any = None):
        super().__init__(parameters)
        self._encoder = None
        self._sources = None

    @property
    def dim(self) -> int | None:
        return self._encoder.dim if self._encoder is not None else None

    def missing_packages(self) -> list[str]:
        missing = self.missing_requirements()
        if self.parameters.encoder == BUNDLED_MINILM:
            missing += [m for m in [missing_module(BUNDLED_MINILM_PACKAGE)] if m]
        return missing

    def text_sources(self) -> list:
        """The text sources to try in order: summaries (if given), then the offline GO text (if wanted)."""
        if self._sources is None:
            from embhub_genept.gene_text import OfflineGeneText, SummaryGeneText

            p = self.parameters
            sources = []
            if p.ncbi_summaries:
                sources.append(SummaryGeneText(p.ncbi_summaries))
            if not p.ncbi_summaries or p.fallback_to_go:
                sources.append(OfflineGeneText(p.max_go_terms))
            self._sources = sources
        return self._sources

    def encoder(self):
        if self._encoder is None:
            from embhub_genept.text_encoder import TextEncoder

            p = self.parameters
            self._encoder = TextEncoder(p.encoder, device=p.device, precision=p.precision)
        return self._encoder

    def describe_genes(self, ensembl_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Ensembl id → (text, source kind) for the genes that have a text."""
        from embhub.identity.genes import load_gene_identity

        ident = load_gene_identity()
        found = {}
        for gene in ensembl_ids:
            for source in self.text_sources():
                text = source.text_of(gene, ident)
                if text:
                    found[gene] = (text, source.kind)
                    break
        return found

    def embed(self, items: Sequence[Item]) -> Embedded:
        from embhub.identity.genes import load_gene_identity, resolve_items

        resolved, failures = resolve_items(items, load_gene_identity())
        texts = self.describe_genes([r.ensembl_id for _, r in resolved])
        kept = []
        for item, resolution in resolved:
            if resolution.ensembl_id in texts:
                kept.append((item, resolution))
            else:
                failures.append(Failure(item.input_id, self._no_text_reason(item, resolution)))
        p = self.parameters
        vectors = self.encoder().encode(
            [texts[r.ensembl_id][0] for _, r in kept], batch_size=p.encode_batch_size, normalize=p.normalize
        )
        return Embedded(
            input_ids=[item.input_id for item, _ in kept],
            keys=[r.ensembl_id for _, r in kept],
            vectors=vectors,
            failures=failures,
            labels={"symbol": [r.symbol for _, r in kept], "text_source": [texts[r.ensembl_id][1] for _, r in kept]},
        )

    def _no_text_reason(self, item: Item, resolution) -> str:
        gene = f"'{item.value}' ({resolution.ensembl_id} {resolution.symbol})"
        if self.parameters.ncbi_summaries and not self.parameters.fallback_to_go:
            return f"no summary for gene {gene} in {self.parameters.ncbi_summaries}; add one or set fallback_to_go: true"
        return f"no description for gene {gene} in the gene text tables; it has no NCBI Gene record to describe it"

    def default_items(self) -> list[Item]:
        """Every protein-coding gene of the identity table that has a text, by Ensembl id."""
        from embhub.identity.genes import load_gene_identity

        ident = load_gene_identity()
        coding = sorted(g for g in ident.genes if ident.biotype_of(g) == "protein_coding")
        described = self.describe_genes(coding)
        return [Item(g, g) for g in coding if g in described]

    def checkpoint_files(self):
        """Reads the summary table and loads the encoder first, so a bad one fails before a store is created."""
        from pathlib import Path

        files = [Path(self.parameters.ncbi_summaries)] if self.parameters.ncbi_summaries else []
        if not all(f.is_file() for f in files):
            return files
        self.text_sources()
        encoder = Path(self.encoder().source)
        if encoder.is_dir():
            files += sorted(f for f in encoder.rglob("*") if f.is_file() and not f.name.startswith("."))
        return files

    def provenance(self) -> dict[str, Any]:
        from embhub.identity.genes import load_gene_identity

        facts: dict[str, Any] = {"gene_id_release": load_gene_identity().release}
        facts["text_sources"] = [source.describe() for source in self.text_sources()]
        if self._encoder is not None:
            facts.update(self._encoder.describe())
        return facts


@hookimpl
def register_providers(register):
    register(GenePTEmbeddings)
