"""``embhub datasets demo``: simulate a screen in the Replogle layout and prepare it like the real one."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable

from embhub.datasets.prepared import PreparedDataset, prepared_dir
from embhub.datasets.simulate import SIMULATED_NOTE, ScreenSpec, demo_network_path, simulate_screen

DEMO_NAME = "demo"


def build_demo(
    spec: ScreenSpec | None = None,
    out: Path | None = None,
    raw_out: Path | None = None,
    ceiling: bool = True,
    n_jobs: int = 1,
    progress: Callable[[str], None] | None = None,
) -> PreparedDataset:
    """Simulate the screen (raw h5ad), prepare it with the Essential recipe, and bootstrap its ceiling."""
    from embhub.datasets.catalog import dataset_recipe
    from embhub.datasets.ceiling import ceiling_of_prepared
    from embhub.datasets.prepare import prepare_dataset

    spec = spec or ScreenSpec()
    out = Path(out) if out else prepared_dir() / f"{DEMO_NAME}.zarr"
    raw_out = Path(raw_out) if raw_out else out.with_name(out.stem + "_raw.h5ad")
    say = progress or (lambda message: None)
    say(f"simulating {spec.cells} cells, {spec.perturbations} perturbations, {spec.cell_lines} cell lines")
    simulate_screen(raw_out, spec)
    say("preparing responses and DEG labels")
    prepare_dataset(
        dataset_recipe("essential"),
        [raw_out],
        out,
        name=DEMO_NAME,
        extra_manifest={
            "simulated": True,
            "description": SIMULATED_NOTE,
            "simulation": {
                **asdict(spec),
                "network": "bundled STRING subgraph",
                "network_file": demo_network_path().name,
            },
        },
    )
    if ceiling:
        say("bootstrapping the experimental-error ceiling")
        ceiling_of_prepared(str(out), n_jobs=n_jobs)
    return PreparedDataset.open(out)
