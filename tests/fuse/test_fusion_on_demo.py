"""The issue's acceptance test on the demo dataset: a small seeded ``embhub datasets demo`` screen, the README
demo's STRING stores, a pure-noise store and a half-coverage store. Fusion (small model, two search trials,
fixed seed) beats every single store's protocol kNN from ``embhub evaluate`` on the same folds, and reads the
noise store least."""

import numpy as np
import pytest

from embhub.evaluate.runner import evaluate
from embhub.fuse.ablation import attention_summary
from embhub.fuse.config import FusionConfig

from tests.fuse.demo_stores import HALF_STORE, NOISE_STORE, build_demo_bench

DEMO_CONFIG = FusionConfig(
    d_model=32, n_heads=2, n_layers=1, dropout=0.3, input_dropout=0.3, lr=5e-3, batch_size=64,
    max_epochs=60, patience=15, warmup_epochs=2, response_offset="context_mean",
)
TRIALS = 2


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    home = tmp_path_factory.mktemp("demo-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBHUB_HOME", str(home))
        return build_demo_bench(tmp_path_factory.mktemp("fuse-demo"))


@pytest.fixture(scope="module")
def single_store_knn(bench):
    return evaluate(bench.dataset, list(bench.stores.values()), estimators=("knn",), baselines=False).results


@pytest.fixture(scope="module")
def fused_demo(bench):
    from embhub.fuse.data import load_fusion_data
    from embhub.fuse.run import run_fusion

    data = load_fusion_data(bench.dataset, list(bench.stores.values()))
    return run_fusion(data, trials=TRIALS, config=DEMO_CONFIG, device="cpu", cpu_threads=1, concat_baseline=False)


def mean_l2_over_folds(frame, method, embedding):
    rows = frame[(frame.method == method) & (frame.embedding == embedding) & (frame.metric == "L2") & (frame.subset == "all")]
    assert (rows.groupby("cell_line").fold.nunique() == 5).all(), (method, embedding)
    return rows.groupby("cell_line").value.mean()


def test_the_bench_has_a_noise_store_and_a_half_coverage_store(bench):
    perturbations = set(bench.dataset.cell_line(bench.dataset.cell_lines[0]).pert_ids)
    assert bench.stores[NOISE_STORE].manifest["provider"]["name"] == "random-gene"
    assert len(perturbations & set(bench.stores[HALF_STORE].ids)) == len(perturbations) // 2


def test_fusion_beats_every_single_store_knn_on_the_demo(fused_demo, single_store_knn, bench):
    fusion = mean_l2_over_folds(fused_demo.results, "fusion", fused_demo.name)
    assert len(fusion) == len(bench.dataset.cell_lines)
    for store in bench.stores:
        knn = mean_l2_over_folds(single_store_knn, "knn", store)
        assert (fusion < knn).all(), (store, fusion.to_dict(), knn.to_dict())


def test_the_noise_store_gets_the_lowest_attention_on_the_demo(fused_demo):
    summary = attention_summary(fused_demo.attention).set_index("token")
    sources = summary[summary.kind == "source"]
    assert sources["attention_when_present"].idxmin() == NOISE_STORE, sources.to_dict()
    assert np.isfinite(sources["attention_when_present"]).all()
