"""AIDO.Cell gene embeddings (GenBio AI's single-cell foundation model), as a built-in embhub plugin.

``mode: positional`` (the study's ``AIDO.Cell_{3M,10M,100M}_positional``): a gene's vector is the row of
the checkpoint's ``position_embedding.weight`` at the gene's position in AIDO.Cell's fixed 19,264-gene
input index — the only place gene identity enters the model (why: :mod:`embhub_aido_cell.checkpoint`;
the index and its keying to Ensembl: :mod:`embhub_aido_cell.gene_index`). The table is read straight
from the safetensors file, so no torch or model code is imported.

``mode: control_cells`` (the study's ``AIDOcell_…_essential_<cell line>``): the model is run over the control
cells of a raw-count ``.h5ad`` file and each index gene's last-layer hidden state is averaged over the cells
(:mod:`embhub_aido_cell.control_mode`); torch is imported only then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from embhub.hookspecs import hookimpl
from embhub.identity.genes import GENE_INPUT_COLUMNS
from embhub.provider import Embedded, Failure, Item, Provider, missing_module

MODES = ("positional", "control_cells")


class AidoCellEmbeddings(Provider):
    name = "aido-cell"
    entity = "gene"
    id_namespace = "gene"
    key_namespace = "ensembl_gene_id"
    version = "1"
    licence = "GenBio AI Community License (AIDO.Cell weights and gene index; non-commercial use)"
    citation = (
        "Ho et al. (2024) Scaling Dense Representations for Single Cell with Transcriptome-Scale Context, "
        "bioRxiv 10.1101/2024.11.28.625303; gene index from Hao et al. (2024) scFoundation, Nat. Methods 21:1481"
    )
    description = (
        "AIDO.Cell gene embedding: the learned embedding of the gene's index position, or the model's output at "
        "the gene averaged over control cells"
    )
    requires = ()
    input_columns = GENE_INPUT_COLUMNS
    default_batch_size = 4096

    @dataclass
    class Parameters:
        checkpoint: str = field(
            default="genbio-ai/AIDO.Cell-100M",
            metadata={"help": "local directory (config.json + model.safetensors) or a Hugging Face hub name"},
        )
        revision: str | None = field(default=None, metadata={"help": "hub revision (commit) to pin"})
        gene_index: str = field(
            default="",
            metadata={"help": "OS_scRNA_gene_index.19264.tsv (default: the one in an installed modelgenerator)"},
        )
        mode: str = field(
            default="positional",
            metadata={
                "help": "positional: the learned embedding of the gene's position in the input index; control_cells: "
                "the gene's last-layer hidden state averaged over the control cells of `cells`"
            },
        )
        cells: str = field(default="", metadata={"help": "control_cells: raw-count .h5ad holding the control cells"})
        control_column: str = field(
            default="gene", metadata={"help": "control_cells: obs column marking control cells ('' = every cell)"}
        )
        control_value: str = field(default="non-targeting", metadata={"help": "control_cells: its value for controls"})
        max_cells: int = field(
            default=0, metadata={"help": "control_cells: seeded sample of at most this many cells (0 = all)"}
        )
        seed: int = field(default=0, metadata={"help": "control_cells: seed of the max_cells sample"})
        cells_per_batch: int = field(
            default=4, metadata={"help": "control_cells: cells (19,266 tokens each) per forward pass (memory, not results)"}
        )
        device: str = field(default="auto", metadata={"help": "control_cells: auto, cpu, cuda, cuda:N or mps"})
        precision: str = field(
            default="auto", metadata={"help": "control_cells: auto (bf16 on GPU as GenBio runs it, fp32 on CPU), fp32, fp16, bf16"}
        )

        def __post_init__(self):
            if self.mode not in MODES:
                raise ValueError(f"mode must be one of {', '.join(MODES)}, got '{self.mode}'")
            if self.max_cells < 0:
                raise ValueError(f"max_cells must be 0 (every cell) or positive, got {self.max_cells}")
            if self.cells_per_batch < 1:
                raise ValueError(f"cells_per_batch must be positive, got {self.cells_per_batch}")

    def __init__(self, parameters: Any = None):
        super().__init__(parameters)
        self._checkpoint = None
        self._table = None
        self._index = None
        self._control = None

    @property
    def dim(self) -> int | None:
        if self.parameters.mode == "control_cells":
            return self._checkpoint.hidden_size if self._checkpoint is not None else None
        return self._table.vectors.shape[1] if self._table is not None else None

    def checkpoint(self):
        """The checkpoint directory (downloaded from the hub on first use) with its config read."""
        if self._checkpoint is None:
            from embhub_aido_cell.checkpoint import AidoCellCheckpoint, checkpoint_directory

            p = self.parameters
            self._checkpoint = AidoCellCheckpoint(checkpoint_directory(p.checkpoint, p.revision))
        return self._checkpoint

    def gene_index(self):
        """AIDO.Cell's input index keyed by Ensembl id (:class:`~embhub_aido_cell.gene_index.KeyedGeneIndex`)."""
        if self._index is None:
            from embhub.identity.genes import load_gene_identity
            from embhub_aido_cell.gene_index import key_gene_index

            self._index = key_gene_index(load_gene_identity(), self.gene_index_file())
        return self._index

    def missing_packages(self) -> list[str]:
        """GenBio's modelgenerator, which ships the gene index, unless the index is given by path; torch and
        safetensors to run the model in control_cells mode."""
        needed = ["torch", "safetensors"] if self.parameters.mode == "control_cells" else []
        if not self.parameters.gene_index:
            needed.append("modelgenerator")
        return [*self.missing_requirements(), *[m for m in map(missing_module, needed) if m]]

    def control(self):
        """:class:`~embhub_aido_cell.control_mode.ControlCellVectors` of the ``cells`` file, read once."""
        if self._control is None:
            from embhub_aido_cell.control_mode import ControlCellVectors

            self.cells_path()
            self._control = ControlCellVectors(self.checkpoint(), self.gene_index(), self.parameters)
        return self._control

    def cells_path(self) -> Path:
        from embhub_aido_cell.control_mode import AIDO_CELLS

        return AIDO_CELLS.cells_file(self.parameters.cells, self.name)

    def gene_index_file(self) -> Path:
        """The index file, its layout checked, so a wrong file stops the run before a store is started."""
        from embhub_aido_cell.gene_index import index_symbols, locate_gene_index

        path = locate_gene_index(self.parameters.gene_index)
        index_symbols(path)
        return path

    def positional_table(self):
        if self._table is None:
            self._table = self.checkpoint().positional_table(self.gene_index().size)
        return self._table

    def embed(self, items: Sequence[Item]) -> Embedded:
        from embhub.identity.genes import load_gene_identity, resolve_items

        resolved, failures = resolve_items(items, load_gene_identity())
        index = self.gene_index()
        found = []
        for item, resolution in resolved:
            gene = index.by_ensembl.get(resolution.ensembl_id)
            if gene is None:
                failures.append(Failure(
                    item.input_id,
                    f"gene '{item.value}' ({resolution.ensembl_id} {resolution.symbol}) is not in AIDO.Cell's "
                    f"{index.size:,}-gene input index, so the model has no embedding for it; drop the gene",
                ))
            else:
                found.append((item, gene))
        positions = [gene.position for _, gene in found]
        labels = {
            "symbol": [gene.symbol for _, gene in found],
            "index_symbol": [gene.index_symbol for _, gene in found],
            "index_position": [str(position) for position in positions],
        }
        if self.parameters.mode == "control_cells":
            table = self.control().means()
            labels["cells_expressing"] = [str(int(self.control().expressed_in[position])) for position in positions]
        else:
            table = self.positional_table().vectors
        return Embedded(
            input_ids=[item.input_id for item, _ in found],
            keys=[gene.ensembl_id for _, gene in found],
            vectors=table[positions].reshape(len(found), table.shape[1]),
            failures=failures,
            labels=labels,
        )

    def default_items(self) -> list[Item]:
        """Every index gene that maps to one Ensembl id, by Ensembl id, in index order."""
        genes = sorted(self.gene_index().by_ensembl.values(), key=lambda gene: gene.position)
        return [Item(gene.ensembl_id, gene.ensembl_id) for gene in genes]

    def checkpoint_files(self) -> list[Path]:
        """The checkpoint, the gene index and (control_cells) the cells file, each read and checked here so a
        bad file stops the run before a store is started, and a changed one stops a resume."""
        files = [*self.checkpoint().files(), self.gene_index_file()]
        if self.parameters.mode == "control_cells":
            self.control().model()
            files.append(self.cells_path())
        return files

    def provenance(self) -> dict[str, Any]:
        from embhub.identity.genes import load_gene_identity
        index = self.gene_index()
        facts = {
            "mode": self.parameters.mode,
            "gene_id_release": load_gene_identity().release,
            "gene_index": str(self.gene_index_file()),
            "gene_index_sha256": index.sha256,
            "gene_index_size": index.size,
            "gene_index_keyed": len(index.by_ensembl),
            "gene_index_unresolved": len(index.unresolved),
            "gene_index_duplicates": len(index.duplicates),
        }
        if self.parameters.mode == "control_cells":
            facts.update(self.control().facts())
        else:
            facts["vector"] = "row (index position) of the checkpoint's position_embedding.weight, read as float32"
        if self._table is not None:
            facts.update({"tensor": self._table.tensor, "tensor_file": self._table.file.name,
                          "tensor_dtype": self._table.stored_dtype})
        if self._checkpoint is not None:
            facts.update(self._checkpoint.describe())
        return facts


@hookimpl
def register_providers(register):
    register(AidoCellEmbeddings)
