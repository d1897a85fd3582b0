"""DEG scoring: macro F1 over present classes per gene, and the study's logistic model."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, precision_score, recall_score

from embhub.datasets.prepared import PreparedDataset
from embhub.evaluate import results as R
from embhub.evaluate.deg import fit_logistic, predict_classes
from embhub.evaluate.metrics import deg_scores
from embhub.evaluate.protocol import ProtocolSettings
from embhub.evaluate.runner import evaluate


def _sklearn_macro_over_present(score, truth, predicted):
    per_gene = []
    for g in range(truth.shape[1]):
        values = score(truth[:, g], predicted[:, g], labels=[-1, 0, 1], average=None, zero_division=0)
        present = np.isin([-1, 0, 1], truth[:, g])
        per_gene.append(values[present].mean())
    return float(np.mean(per_gene))


def test_deg_scores_equal_sklearn_per_gene():
    rng = np.random.default_rng(3)
    truth = rng.choice([-1, 0, 1], size=(37, 25), p=[0.15, 0.7, 0.15])
    truth[:, 0] = 0
    truth[:, 1] = np.where(np.arange(37) % 2, 1, 0)
    predicted = np.where(rng.random(truth.shape) < 0.6, truth, rng.choice([-1, 0, 1], size=truth.shape))
    scores = deg_scores(truth, predicted)
    assert scores["F1"] == pytest.approx(_sklearn_macro_over_present(f1_score, truth, predicted), abs=1e-12)
    assert scores["recall"] == pytest.approx(_sklearn_macro_over_present(recall_score, truth, predicted), abs=1e-12)
    assert scores["precision"] == pytest.approx(_sklearn_macro_over_present(precision_score, truth, predicted), abs=1e-12)


def test_logistic_model_matches_sklearn_balanced_multinomial():
    """Per gene, the study's objective (balanced weighted-mean CE averaged over G genes + ‖W‖²/C) is
    sklearn's balanced multinomial logistic regression with C_sklearn = C / (2 n G)."""
    rng = np.random.default_rng(0)
    n, d, n_genes, c = 90, 4, 3, 50.0
    x = rng.normal(size=(n, d))
    scores = x @ rng.normal(size=(d, n_genes)) * 1.5 + rng.normal(size=(n, n_genes))
    labels = np.where(scores > 0.8, 1, np.where(scores < -0.8, -1, 0))
    weights, bias = fit_logistic(x, labels, c, device="cpu")
    logits = (x @ weights.T + bias).reshape(n, n_genes, 3)
    ours = np.exp(logits - logits.max(axis=2, keepdims=True))
    ours /= ours.sum(axis=2, keepdims=True)
    for g in range(n_genes):
        reference = LogisticRegression(C=c / (2 * n * n_genes), class_weight="balanced", tol=1e-10, max_iter=10000)
        reference.fit(x, labels[:, g])
        np.testing.assert_allclose(ours[:, g, :], reference.predict_proba(x), atol=2e-3)
    np.testing.assert_array_equal(predict_classes(weights, bias, x), np.argmax(ours, axis=2) - 1)


def test_deg_evaluation_rows(toy, stores):
    settings = ProtocolSettings(c_grid=(1e3,))
    evaluation = evaluate(PreparedDataset.open(toy.path), [stores["wide"], stores["partial"]], cell_lines=["K-562"],
                          folds=[2], deg=True, settings=settings, device="cpu")
    frame = evaluation.results
    f1 = frame[(frame.metric == "F1") & (frame.subset == "all")].set_index(["method", "embedding"])["value"]
    labelled = PreparedDataset.open(toy.path).cell_line("K-562").deg_mask
    test = (toy.folds["K-562"] == 2) & labelled
    truth = toy.deg["K-562"][test]
    assert f1[("baseline", R.NO_CHANGE)] == pytest.approx(_sklearn_macro_over_present(f1_score, truth, np.zeros_like(truth)))
    assert f1[("logistic", "wide")] > f1[("baseline", R.MOST_FREQUENT)]
    assert f1[("logistic", R.IDEALIZED)] > f1[("logistic", R.RANDOM)]
    row = frame[(frame.metric == "F1") & (frame.embedding == "partial") & (frame.subset == "all")].iloc[0]
    assert row.n_test == test.sum() and row.n_covered < row.n_test
