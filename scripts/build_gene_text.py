"""Build the offline gene-text tables that the GenePT provider ships.

Sources (Debian packages, read as plain SQLite, no R needed)::

    apt-get download r-bioc-org.hs.eg.db r-bioc-go.db
    dpkg-deb -x r-bioc-org.hs.eg.db_*.deb x && dpkg-deb -x r-bioc-go.db_*.deb x
    python scripts/build_gene_text.py \\
        --org-db x/usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite \\
        --go-db x/usr/lib/R/site-library/GO.db/extdata/GO.sqlite \\
        --out plugins/embhub_genept/data

Outputs:

``gene_text.tsv.gz``
    one row per NCBI gene: ``entrez``, ``symbol``, ``ensembl`` (``|``-joined), ``gene_type``, ``name``
    and ``go_bp`` / ``go_mf`` / ``go_cc``: the gene's direct GO annotations as ``|``-joined numeric GO
    ids (``6915`` is GO:0006915), most specific first (fewest annotated genes), ties by id.
``go_terms.tsv.gz``
    ``go_id`` (numeric, as above) → ``term`` name, for every term used.
``gene_text.json``
    source versions, licences, row counts and the sha256 of both tables.

Annotations with evidence ``ND`` (no biological data) and the three ontology roots are left out. Genes of
NCBI type ``biological-region`` (regulatory regions, not genes) are left out.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path

ONTOLOGIES = ("bp", "mf", "cc")
ROOT_TERMS = {"GO:0008150", "GO:0003674", "GO:0005575"}
EXCLUDED_GENE_TYPES = {"biological-region"}


def read_metadata(connection: sqlite3.Connection) -> dict[str, str]:
    return dict(connection.execute("select name, value from metadata").fetchall())


def read_genes(org: sqlite3.Connection) -> dict[int, dict]:
    rows = org.execute(
        """select g._id, g.gene_id, i.symbol, i.gene_name, coalesce(t.gene_type, 'unknown')
           from genes g join gene_info i on i._id = g._id left join genetype t on t._id = g._id"""
    ).fetchall()
    genes = {}
    for internal, entrez, symbol, name, gene_type in rows:
        if gene_type in EXCLUDED_GENE_TYPES:
            continue
        genes[internal] = {"entrez": entrez, "symbol": symbol, "name": name, "gene_type": gene_type, "ensembl": []}
    for internal, ensembl in org.execute("select _id, ensembl_id from ensembl order by ensembl_id"):
        if internal in genes:
            genes[internal]["ensembl"].append(ensembl)
    return genes


def read_annotations(org: sqlite3.Connection, genes: dict[int, dict]) -> dict[str, dict[int, set[str]]]:
    """``{ontology: {gene: {GO ids}}}`` of direct, non-ND annotations."""
    annotations: dict[str, dict[int, set[str]]] = {o: defaultdict(set) for o in ONTOLOGIES}
    for ontology in ONTOLOGIES:
        for internal, go_id, evidence in org.execute(f"select _id, go_id, evidence from go_{ontology}"):
            if internal in genes and evidence != "ND" and go_id not in ROOT_TERMS:
                annotations[ontology][internal].add(go_id)
    return annotations


def open_reproducible_gzip(path: Path) -> io.TextIOWrapper:
    """A text handle whose gzip header carries no timestamp, so rebuilding gives identical bytes."""
    return io.TextIOWrapper(gzip.GzipFile(path, "wb", compresslevel=9, mtime=0), encoding="utf-8", newline="\n")


def numeric(go_id: str) -> str:
    return str(int(go_id.removeprefix("GO:")))


def build(org_db: Path, go_db: Path, out: Path) -> dict:
    org = sqlite3.connect(f"file:{org_db}?mode=ro", uri=True)
    go = sqlite3.connect(f"file:{go_db}?mode=ro", uri=True)
    genes = read_genes(org)
    annotations = read_annotations(org, genes)
    genes_per_term = Counter(t for per_gene in annotations.values() for terms in per_gene.values() for t in terms)
    terms = dict(go.execute("select go_id, term from go_term").fetchall())
    missing = sorted(t for t in genes_per_term if t not in terms)
    if missing:
        raise SystemExit(f"{len(missing)} GO ids have no term in {go_db} (e.g. {missing[0]}); use matching releases")

    out.mkdir(parents=True, exist_ok=True)
    gene_path, term_path = out / "gene_text.tsv.gz", out / "go_terms.tsv.gz"
    columns = ["entrez", "symbol", "ensembl", "gene_type", "name"] + [f"go_{o}" for o in ONTOLOGIES]
    with open_reproducible_gzip(gene_path) as handle:
        handle.write("\t".join(columns) + "\n")
        for internal, gene in sorted(genes.items(), key=lambda kv: int(kv[1]["entrez"])):
            go_columns = []
            for ontology in ONTOLOGIES:
                ids = sorted(annotations[ontology].get(internal, ()), key=lambda t: (genes_per_term[t], t))
                go_columns.append("|".join(numeric(t) for t in ids))
            fields = [gene["entrez"], gene["symbol"], "|".join(gene["ensembl"]), gene["gene_type"], gene["name"]]
            handle.write("\t".join(f.replace("\t", " ") for f in fields + go_columns) + "\n")
    with open_reproducible_gzip(term_path) as handle:
        handle.write("go_id\tterm\n")
        for go_id in sorted(genes_per_term):
            handle.write(f"{numeric(go_id)}\t{terms[go_id]}\n")

    org_meta, go_meta = read_metadata(org), read_metadata(go)
    info = {
        "sources": {
            "genes": f"NCBI Entrez Gene {org_meta.get('EGSOURCEDATE')} via Bioconductor org.Hs.eg.db "
            f"(Debian r-bioc-org.hs.eg.db); Ensembl links {org_meta.get('ENSOURCEDATE')}",
            "go_annotations": f"NCBI gene2go {org_meta.get('GOEGSOURCEDATE')} via org.Hs.eg.db",
            "go_terms": f"Gene Ontology go-basic.obo {go_meta.get('GOSOURCEDATE')} via Bioconductor GO.db "
            "(Debian r-bioc-go.db)",
        },
        "licences": {
            "genes": "NCBI Gene data: public domain (US government work), no restrictions on use",
            "go": "Gene Ontology and GO annotations: CC BY 4.0 (http://geneontology.org/docs/go-citation-policy/)",
            "bioconductor_packages": "Artistic-2.0 (the packaging; the data keep the licences above)",
        },
        "rules": "direct annotations only; evidence ND and ontology roots dropped; GO ids per gene ordered by "
        "number of annotated genes ascending (most specific first); NCBI gene type biological-region dropped",
        "genes": len(genes),
        "genes_with_go": len({g for per_gene in annotations.values() for g in per_gene}),
        "terms": len(genes_per_term),
        "sha256": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (gene_path, term_path)},
    }
    (out / "gene_text.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--org-db", type=Path, required=True, help="org.Hs.eg.sqlite from r-bioc-org.hs.eg.db")
    parser.add_argument("--go-db", type=Path, required=True, help="GO.sqlite from r-bioc-go.db")
    parser.add_argument("--out", type=Path, default=Path("plugins/embhub_genept/data"))
    args = parser.parse_args()
    info = build(args.org_db, args.go_db, args.out)
    print(json.dumps({k: info[k] for k in ("genes", "genes_with_go", "terms")}))


if __name__ == "__main__":
    main()
