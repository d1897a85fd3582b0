"""The references every summary needs — the context mean (the gap's starting point; most frequent class on DEG
labels) and the experimental-error ceilings for LFC and DEG — are scored whether or not the controls are."""

import numpy as np

from embhub.datasets.prepared import PreparedDataset, write_deg_ceiling
from embhub.evaluate import results as R
from embhub.evaluate.protocol import ProtocolSettings
from embhub.evaluate.runner import evaluate


def test_no_baselines_still_scores_the_context_mean_and_the_ceiling(toy, stores):
    frame = evaluate(PreparedDataset.open(toy.path), [stores["wide"]], cell_lines=["Hep-G2"], folds=[3], baselines=False).results
    l2 = frame[(frame.metric == "L2") & (frame.subset == "all")].set_index("embedding")
    assert set(l2.index) == {"wide", R.CONTEXT_MEAN, R.CEILING}
    lfc, folds = toy.lfc["Hep-G2"].astype(np.float64), toy.folds["Hep-G2"]
    test, train = lfc[folds == 3], lfc[folds != 3]
    expected = np.mean(np.linalg.norm(test - train.mean(axis=0), axis=1))
    np.testing.assert_allclose(l2.loc[R.CONTEXT_MEAN, "value"], expected, rtol=1e-12)
    ceiling = PreparedDataset.open(toy.path).cell_line("Hep-G2").ceiling_l2(0.9)[folds == 3]
    np.testing.assert_allclose(l2.loc[R.CEILING, "value"], ceiling.mean(), rtol=1e-6)


def test_deg_ceiling_rows_are_the_prepared_quantile_of_each_fold(toy, stores):
    quantiles = [0.1, 0.5]
    rng = np.random.default_rng(3)
    written = {metric: rng.uniform(0.3, 0.9, size=(5, 2)) for metric in ("f1", "recall", "precision")}
    write_deg_ceiling(toy.path, "K-562", quantiles, written)
    frame = evaluate(PreparedDataset.open(toy.path), [stores["wide"]], cell_lines=["K-562"], folds=[2], deg=True,
                     baselines=False, settings=ProtocolSettings(c_grid=(1e3,)), device="cpu").results
    ceiling = frame[(frame.method == "ceiling") & (frame.embedding == R.DEG_CEILING)]
    for metric in R.DEG_METRICS:
        values = ceiling[ceiling.metric == metric]
        assert sorted(values.subset) == ["all", "common"]  # the store covers every test perturbation
        np.testing.assert_allclose(values.value, written[metric.lower()][2, 0], rtol=1e-6)
    f1 = frame[(frame.metric == "F1") & (frame.subset == "all")]
    assert set(f1.embedding) == {"wide", R.DEG_CEILING, R.MOST_FREQUENT}
    layout = R.study_layout_deg(frame).set_index("name")
    row = layout.loc["Experimental error (quantile 0.1)"]
    assert row["quantile"] == 0.1 and row["fold"] == "K-562.2"
    np.testing.assert_allclose(row[["f1_score", "recall", "precision"]].astype(float),
                               [written[m][2, 0] for m in ("f1", "recall", "precision")], rtol=1e-6)
