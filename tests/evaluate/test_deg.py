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
from tests.evaluate.conftest import build_dataset, build_store, informative_vectors


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


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not _cuda_available(), reason="needs a CUDA GPU"))])
def test_logistic_model_matches_sklearn_balanced_multinomial(device):
    """Per gene, the study's objective (balanced weighted-mean CE averaged over G genes + ‖W‖²/C) is
    sklearn's balanced multinomial logistic regression with C_sklearn = C / (2 n G)."""
    rng = np.random.default_rng(0)
    n, d, n_genes, c = 90, 4, 3, 50.0
    x = rng.normal(size=(n, d))
    scores = x @ rng.normal(size=(d, n_genes)) * 1.5 + rng.normal(size=(n, n_genes))
    labels = np.where(scores > 0.8, 1, np.where(scores < -0.8, -1, 0))
    weights, bias = fit_logistic(x, labels, c, device=device)
    logits = (x @ weights.T + bias).reshape(n, n_genes, 3)
    ours = np.exp(logits - logits.max(axis=2, keepdims=True))
    ours /= ours.sum(axis=2, keepdims=True)
    for g in range(n_genes):
        reference = LogisticRegression(C=c / (2 * n * n_genes), class_weight="balanced", tol=1e-10, max_iter=10000)
        reference.fit(x, labels[:, g])
        np.testing.assert_allclose(ours[:, g, :], reference.predict_proba(x), atol=2e-3)
    np.testing.assert_array_equal(predict_classes(weights, bias, x), np.argmax(ours, axis=2) - 1)


@pytest.mark.parametrize("rows_per_block", [40, 16], ids=["one block", "blocks of rows"])
def test_loss_and_gradient_equal_autograd_of_the_study_formulation(rows_per_block):
    """The study's closure (``nn.Linear`` logits viewed ``(n, G, 3)``, log-softmax, balanced weighted mean per
    gene, mean over genes, ‖W‖²/C) differentiated by autograd, against the class-major closed form."""
    import torch

    from embhub.evaluate.deg import _class_major, _gene_major, _Objective

    rng = np.random.default_rng(1)
    n, d, n_genes, c = 40, 5, 7, 30.0
    x = torch.as_tensor(rng.normal(size=(n, d)))
    labels = rng.choice([-1, 0, 1], size=(n, n_genes), p=[0.2, 0.6, 0.2])
    labels[:, 3] = np.where(labels[:, 3] == 1, 0, labels[:, 3])  # a gene without class +1
    y = torch.as_tensor(labels + 1)
    weight = torch.as_tensor(rng.normal(size=(3 * n_genes, d)), dtype=torch.float64).requires_grad_()
    bias = torch.as_tensor(rng.normal(size=3 * n_genes), dtype=torch.float64).requires_grad_()
    counts = torch.stack([(y == k).sum(dim=0) for k in range(3)], dim=1).double()
    class_weights = torch.where(counts > 0, n / (3.0 * counts.clamp(min=1)), torch.zeros_like(counts))
    sample_weights = torch.gather(class_weights.T, 0, y)
    nll = -torch.log_softmax((x @ weight.T + bias).view(n, n_genes, 3), dim=2).gather(2, y.unsqueeze(2)).squeeze(2)
    expected = ((sample_weights * nll).sum(dim=0) / sample_weights.sum(dim=0)).mean() + (weight**2).sum() / c
    expected.backward()

    scale = sample_weights / (sample_weights.sum(dim=0) * n_genes)
    targets = torch.stack([torch.where(y == k, scale, 0.0) for k in range(3)], dim=1)
    parameters = _class_major(torch.cat([weight.detach(), bias.detach()[:, None]], dim=1), n_genes)
    objective = _Objective(torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], dim=1), targets, scale, c, rows_per_block)
    loss, gradient = objective(parameters)
    assert float(loss) == pytest.approx(float(expected.detach()), rel=1e-12)
    gradient = _gene_major(gradient, n_genes).numpy()
    np.testing.assert_allclose(gradient[:, :-1], weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gradient[:, -1], bias.grad.numpy(), rtol=1e-10, atol=1e-12)


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


def test_deg_on_a_dataset_smaller_than_the_pca_size_scores_every_row(tmp_path):
    """80 perturbations: the random control's smallest inner split has fewer rows than PCA(100) asks, so its
    PCA keeps as many components as rows (one of them empty) and must not overflow the float32 fit."""
    toy = build_dataset(tmp_path / "small.zarr", cell_lines=("K-562",), n_perts=80, n_genes=20)
    store = build_store(tmp_path / "s.zarr", toy.pert_ids, informative_vectors(toy, 30, 1), "s")
    frame = evaluate(PreparedDataset.open(toy.path), [store], folds=[0], deg=True, device="cpu").results
    f1 = frame[(frame.metric == "F1") & (frame.subset == "all")].set_index(["method", "embedding"])["value"]
    assert np.isfinite(f1[("logistic", R.RANDOM)]) and np.isfinite(f1[("logistic", "s")])
    assert f1[("logistic", R.IDEALIZED)] > f1[("logistic", R.RANDOM)]
