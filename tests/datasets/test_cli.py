"""The datasets commands driven end to end as a user runs them."""

from embhub.datasets.prepared import PreparedDataset
from tests.datasets.layouts import replogle_file
from tests.support.cli import assert_one_line_error, run_cli


def test_list_shows_the_four_recipes():
    outcome = run_cli("datasets", "list")
    assert outcome.exit_code == 0
    for name in ("essential", "norman", "sciplex3", "tahoe"):
        assert name in outcome.stdout


def test_prepare_then_ceiling_into_embhub_home(tmp_path, isolated_home):
    raw = replogle_file(tmp_path / "raw.h5ad")
    outcome = run_cli("datasets", "prepare", "essential", "--raw", raw)
    assert outcome.exit_code == 0, outcome.stderr
    assert (isolated_home / "datasets" / "essential.zarr").exists()
    outcome = run_cli("ceiling", "essential", "--jobs", "2")
    assert outcome.exit_code == 0, outcome.stderr
    prepared = PreparedDataset.open("essential")
    assert prepared.cell_line("K-562").ceiling_l2(0.9).shape == (4,)
    assert "ceiling L2" in outcome.stdout and "ceiling DEG F1" in outcome.stdout
    assert prepared.cell_line("K-562").deg_ceiling(0.1).shape == (5,)


def test_bad_raw_file_is_one_red_line(tmp_path):
    outcome = run_cli("datasets", "prepare", "tahoe", "--raw", replogle_file(tmp_path / "raw.h5ad"))
    assert outcome.exit_code == 1
    assert "no column 'drug'" in outcome.stderr
    assert "Traceback" not in outcome.stderr + outcome.stdout


def test_demo_is_labelled_simulated(tmp_path):
    outcome = run_cli(
        "datasets", "demo", "--cells", "2000", "--perturbations", "20", "--no-ceiling", "--out", tmp_path / "d.zarr"
    )
    assert outcome.exit_code == 0, outcome.stderr
    assert "SIMULATED" in outcome.stdout
    prepared = PreparedDataset.open(tmp_path / "d.zarr")
    assert prepared.simulated and "SIMULATED" in prepared.manifest["description"]
    assert len(prepared.cell_lines) == 2
    assert prepared.cell_line(prepared.cell_lines[0]).pert_ids[0].startswith("ENSG")


def test_perturbations_of_a_drug_screen_feed_a_smiles_model(tmp_path):
    """Tahoe's perturbations TSV carries the drugs' SMILES, so `embhub extract --input` embeds them as the help says."""
    import pandas as pd
    from rdkit import Chem

    from embhub.store import EmbeddingStore
    from tests.datasets.layouts import tahoe_plate_files

    paths, gene_list, _, _ = tahoe_plate_files(tmp_path)
    raw = [argument for path in (*paths, gene_list) for argument in ("--raw", path)]
    assert run_cli("datasets", "prepare", "tahoe", *raw).exit_code == 0
    table_path = tmp_path / "drugs.tsv"
    outcome = run_cli("datasets", "perturbations", "tahoe", "--out", table_path)
    assert outcome.exit_code == 0, outcome.stderr
    table = pd.read_csv(table_path, sep="\t", dtype=str, keep_default_na=False)
    assert list(table["id"]) == ["101", "202"] and list(table["label"]) == ["DrugA", "DrugB"]
    assert list(table["smiles"]) == ["CCO", "c1ccccc1O"]
    assert list(table["drug"]) == ["DrugA", "DrugB"]  # the name, what name-keyed models (drug-targets) read
    outcome = run_cli("extract", "--model", "morgan-2-2048", "--input", table_path, "--out", tmp_path / "m.zarr")
    assert outcome.exit_code == 0, outcome.stderr
    expected = {Chem.MolToInchiKey(Chem.MolFromSmiles(s)) for s in ("CCO", "c1ccccc1O")}
    assert set(EmbeddingStore.open(tmp_path / "m.zarr").ids) == expected


def test_show_prints_the_perturbations_of_each_fold(tmp_path):
    """`datasets show` says it summarises folds: each cell line's test-fold sizes, counted from the stored folds."""
    raw = replogle_file(tmp_path / "raw.h5ad")
    assert run_cli("datasets", "prepare", "essential", "--raw", raw, "--out", tmp_path / "e.zarr").exit_code == 0
    prepared = PreparedDataset.open(tmp_path / "e.zarr")
    outcome = run_cli("datasets", "show", tmp_path / "e.zarr")
    assert outcome.exit_code == 0, outcome.stderr
    assert "perturbations per fold" in outcome.stdout
    for line in prepared.cell_lines:
        folds = prepared.cell_line(line).folds
        sizes = "/".join(str(int((folds == k).sum())) for k in range(prepared.n_folds))
        row = next(r for r in outcome.stdout.splitlines() if line in r)
        assert sizes in row, row


def test_prepare_and_ceiling_stop_while_another_process_writes_the_dataset(tmp_path):
    """A prepared dataset being written (a preparation or ceiling under way) is not prepared or bootstrapped
    again beside it: one line, and the dataset is left as the other process leaves it."""
    from embhub.locks import sole_writer

    raw = replogle_file(tmp_path / "raw.h5ad")
    out = tmp_path / "e.zarr"
    assert run_cli("datasets", "prepare", "essential", "--raw", raw, "--out", out).exit_code == 0
    before = PreparedDataset.open(out).manifest
    with sole_writer(out, "preparation"):
        for command in (("datasets", "prepare", "essential", "--raw", raw, "--out", out), ("ceiling", out)):
            assert_one_line_error(run_cli(*command), f"{out} is being written by another embhub process")
    assert PreparedDataset.open(out).manifest == before
    assert run_cli("ceiling", out, "--outer", "2", "--no-deg").exit_code == 0


def test_ceiling_refuses_counts_below_one_instead_of_crashing_or_using_the_default(tmp_path, isolated_home):
    assert run_cli("datasets", "prepare", "essential", "--raw", replogle_file(tmp_path / "raw.h5ad")).exit_code == 0
    for option, value in (("--outer", "0"), ("--outer", "-2"), ("--inner", "0"), ("--deg-trials", "0")):
        outcome = run_cli("ceiling", "essential", option, value)
        assert outcome.exit_code == 1
        assert_one_line_error(outcome, f"{option} {value}", "at least 1")
    assert "ceiling" not in PreparedDataset.open("essential").manifest
