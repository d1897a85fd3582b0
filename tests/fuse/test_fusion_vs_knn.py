"""The issue's acceptance test: on a screen where sources carry different parts of the signal, fusion beats
every single store's protocol kNN (scored by ``embhub evaluate`` on the same folds) and ignores the noise."""

import numpy as np
import pytest

from embhub.evaluate.results import RESULT_COLUMNS
from embhub.evaluate.runner import evaluate
from embhub.fuse.ablation import attention_summary


@pytest.fixture(scope="module")
def single_store_knn(screen):
    return evaluate(screen.dataset, list(screen.stores.values()), estimators=("knn",), baselines=False).results


def mean_l2(frame, method, embedding):
    rows = frame[(frame.method == method) & (frame.embedding == embedding) & (frame.metric == "L2") & (frame.subset == "all")]
    assert len(rows) == 10, (method, embedding, len(rows))
    return rows.groupby("cell_line").value.mean()


def test_fusion_beats_every_single_store_knn_on_mean_l2_over_folds(fused, single_store_knn):
    fusion = mean_l2(fused.results, "fusion", fused.name)
    for store in ("store_a", "store_b", "noise", "half"):
        knn = mean_l2(single_store_knn, "knn", store)
        assert (fusion < knn).all(), (store, fusion.to_dict(), knn.to_dict())
    informative = np.minimum(mean_l2(single_store_knn, "knn", "store_a"), mean_l2(single_store_knn, "knn", "store_b"))
    assert (fusion < 0.7 * informative).all()


def test_fusion_also_beats_the_concatenation_baseline(fused):
    concat = mean_l2(fused.results, "knn", "concat[store_a+store_b+noise+half]")
    assert (mean_l2(fused.results, "fusion", fused.name) < concat).all()


def test_noise_store_gets_low_attention(fused):
    summary = attention_summary(fused.attention).set_index("token")
    noise = summary.loc["noise", "attention"]
    assert noise < 0.75 * min(summary.loc["store_a", "attention"], summary.loc["store_b", "attention"])
    sources = summary[summary.kind == "source"]
    assert sources["attention_when_present"].idxmin() == "noise"


def test_attention_rows_sum_to_one_and_missing_sources_get_none(fused, screen_data):
    per_row = fused.attention.groupby(["fold", "cell_line"]).attention.sum()
    np.testing.assert_allclose(per_row.to_numpy(), 1.0, atol=1e-5)
    half = fused.attention[fused.attention.token == "half"]
    # mean over all test rows = mean when present × coverage, because missing rows contribute exactly 0
    np.testing.assert_allclose(half.attention, half.attention_when_present * half.n_present / half.n_test, rtol=1e-5)
    assert (half.n_present < half.n_test).all()


def test_fusion_rows_follow_the_shared_results_table(fused, screen):
    frame = fused.results
    assert tuple(frame.columns) == RESULT_COLUMNS
    fusion = frame[frame.method == "fusion"]
    assert set(fusion.subset) == {"all", "common"}
    assert set(fusion.metric) == {"L2", "MSE", "MAE", "Pearson", "Spearman"}
    all_rows = fusion[(fusion.subset == "all") & (fusion.metric == "L2")].set_index(["cell_line", "fold"]).sort_index()
    for (line, fold), row in all_rows.iterrows():
        assert row.n_test == int((screen.folds == fold).sum())
        assert row.n_covered == row.n_test  # store_a covers every perturbation
    common = fusion[(fusion.subset == "common") & (fusion.metric == "L2")]
    half_ids = set(screen.stores["half"].ids)
    for row in common.itertuples():
        expected = sum(1 for pid, f in zip(screen.pert_ids, screen.folds) if f == row.fold and pid in half_ids)
        assert row.n_test == expected
    assert fusion.store_id.str.count(";").eq(3).all()
    assert fusion.dataset_id.nunique() == 1
