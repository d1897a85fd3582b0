"""DEG classification: the study's per-gene 3-class logistic model (``pkg/benchmark/logistic_regression.py``).

One linear layer ``(d → 3·G)`` gives logits ``(n, G, 3)`` for classes (−1, 0, +1). Loss: per gene a
cross-entropy with balanced class weights ``w[g, c] = n / (3 · count[g, c])`` (0 for a class absent from
that gene's training labels) and PyTorch's weighted-mean reduction over perturbations, then the mean over
genes, plus ``‖W‖²_F / C`` (bias not penalised). Optimiser: full-batch L-BFGS, 100 iterations, strong
Wolfe line search, one ``step``. C is chosen from the grid by an unshuffled 5-fold CV scored by the macro
F1 of :func:`embhub.evaluate.metrics.deg_scores`, each inner split refitting scaler and PCA.

The objective and its gradient are computed in closed form (:class:`_Objective`), not by autograd.
Runs on a GPU when one is present (:func:`embhub.accel.pick_device`), always in float32: L-BFGS line
searches are unreliable in half precision. The initial weights are seeded (the study's were not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embhub.evaluate.metrics import deg_scores
from embhub.evaluate.projection import ScaledPCA, inner_kfold

LOGISTIC_MAX_ITER = 100
LOGISTIC_SEED = 0
CPU_ROWS_PER_BLOCK = 64


def fit_logistic(features: np.ndarray, labels: np.ndarray, c: float, device: str = "auto", seed: int = LOGISTIC_SEED):
    """Fit on ``features`` ``(n, d)`` and ``labels`` ``(n, G)`` in {−1, 0, +1}; returns ``(W (3G, d), b (3G,))``
    with rows in the study's (gene, class) order.

    The study's ``nn.Linear(d, 3G)`` initialisation is kept; the optimisation runs on its rows reordered
    class-major, so that each class's logits are one contiguous ``(n, G)`` plane and the loss and its gradient
    are a few passes over those planes (:class:`_Objective`) instead of autograd through a softmax over a
    length-3 axis, which took more than half of each step on the CPU.
    """
    import torch

    from embhub.accel import pick_device

    target_device = pick_device(device)
    x = torch.as_tensor(np.asarray(features, dtype=np.float32), device=target_device)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64) + 1, device=target_device)
    n, n_genes = y.shape
    counts = torch.stack([(y == c_).sum(dim=0) for c_ in range(3)], dim=1).to(torch.float32)
    weights = torch.where(counts > 0, n / (3.0 * counts.clamp(min=1)), torch.zeros_like(counts))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = torch.nn.Linear(x.shape[1], 3 * n_genes)
    sample_weights = torch.gather(weights.T, 0, y)
    scale = sample_weights / (sample_weights.sum(dim=0) * n_genes)  # weighted mean per gene, then mean over genes
    targets = torch.stack([torch.where(y == k, scale, 0.0) for k in range(3)], dim=1)
    # one class-major parameter: the weights with the bias as a last column (x gets a column of ones)
    parameters = _class_major(torch.cat([layer.weight.detach(), layer.bias.detach()[:, None]], dim=1), n_genes)
    parameters = parameters.to(target_device).requires_grad_()
    x = torch.cat([x, torch.ones(n, 1, device=target_device)], dim=1)
    optimizer = torch.optim.LBFGS([parameters], max_iter=LOGISTIC_MAX_ITER, line_search_fn="strong_wolfe")
    objective = _Objective(x, targets, scale, c, rows_per_block=n if target_device.type == "cuda" else CPU_ROWS_PER_BLOCK)

    def closure():
        loss, parameters.grad = objective(parameters.detach())
        return loss

    optimizer.step(closure)
    fitted = _gene_major(parameters.detach(), n_genes).cpu().numpy()
    return np.ascontiguousarray(fitted[:, :-1]), fitted[:, -1].copy()


class _Objective:
    """The study's objective and its gradient for class-major ``parameters (3G, d + 1)`` (weights, then the
    bias) and ``x (n, d + 1)`` ending in a column of ones: ``Σ scale · (logsumexp(logits) − logit of the true
    class) + ‖W‖²/C`` (the bias is not penalised), where ``scale (n, G)`` is each entry's weight and
    ``targets (n, 3, G)`` holds it at the entry's true class and 0 elsewhere (both fixed for a fit). The
    logits' gradient is ``scale · softmax − targets``.

    The logits and the gradient are written into buffers kept for the whole fit (a fresh ``(n, 3G)`` tensor
    per evaluation cost page faults), and on the CPU the softmax passes run over ``rows_per_block`` rows at
    a time, so that each block stays in cache through all of them (about twice as fast per evaluation on
    two cores at Essential size; figures in ``docs/evaluate.md``). On a GPU one block is fastest.
    """

    def __init__(self, x, targets, scale, c: float, rows_per_block: int):
        import torch

        self.x, self.targets, self.scale, self.c = x, targets, scale, c
        self.rows_per_block = max(1, rows_per_block)
        n, _, n_genes = targets.shape
        self.logits = torch.empty((n, 3 * n_genes), dtype=x.dtype, device=x.device)
        self.gradient = torch.empty((3 * n_genes, x.shape[1]), dtype=x.dtype, device=x.device)

    def __call__(self, parameters):
        import torch

        n, _, n_genes = self.targets.shape
        logits = torch.matmul(self.x, parameters.T, out=self.logits).view(n, 3, n_genes)
        loss = torch.zeros((), dtype=torch.float64, device=self.x.device)
        for start in range(0, n, self.rows_per_block):
            block = logits[start : start + self.rows_per_block]
            scale = self.scale[start : start + self.rows_per_block]
            targets = self.targets[start : start + self.rows_per_block]
            top = torch.maximum(block[:, 0], block[:, 1])
            torch.maximum(top, block[:, 2], out=top)
            loss -= torch.dot(targets.reshape(-1), block.reshape(-1))
            block.sub_(top.unsqueeze(1)).exp_()
            total = block.sum(dim=1)
            share = scale / total
            loss += torch.dot(scale.reshape(-1), total.log_().add_(top).reshape(-1))
            block.mul_(share.unsqueeze(1)).sub_(targets)
        weights = parameters[:, :-1]
        gradient = torch.matmul(logits.view(n, 3 * n_genes).T, self.x, out=self.gradient)
        gradient[:, :-1] += weights * (2.0 / self.c)
        return loss + weights.square().sum() / self.c, gradient


def _class_major(parameter, n_genes: int):
    """Rows in (gene, class) order → (class, gene) order."""
    return parameter.reshape(n_genes, 3, -1).transpose(0, 1).reshape(parameter.shape).contiguous()


def _gene_major(parameter, n_genes: int):
    return parameter.reshape(3, n_genes, -1).transpose(0, 1).reshape(parameter.shape).contiguous()


def predict_classes(weights: np.ndarray, bias: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Predicted class ``(n, G)`` in {−1, 0, +1}: the argmax of the logits per gene."""
    logits = np.asarray(features, dtype=np.float32) @ weights.T + bias
    return (np.argmax(logits.reshape(len(features), -1, 3), axis=2) - 1).astype(np.int8)


@dataclass
class LogisticFit:
    predictions: np.ndarray
    c: float
    cv_f1: dict[float, float]
    n_components: int | None


def logistic_cv_predict(
    x_train: np.ndarray,
    labels: np.ndarray,
    x_test: np.ndarray,
    c_grid: tuple[float, ...],
    n_components: int | None,
    n_splits: int = 5,
    device: str = "auto",
) -> LogisticFit:
    """Select C by unshuffled inner CV (skipped for a one-value grid) and predict the test classes.

    ``n_components=None`` uses the features as they are (the idealized control).
    """
    pairs = inner_kfold(len(x_train), n_splits, None)
    q = None
    if n_components is not None:
        q = min(n_components, x_train.shape[1], min(len(tr) for tr, _ in pairs))

    def project(train: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if q is None:
            return train, other
        pca = ScaledPCA.fit(train, q)
        return pca.transform(train), pca.transform(other)

    scores: dict[float, float] = {}
    if len(c_grid) > 1:
        totals = np.zeros(len(c_grid))
        for tr, va in pairs:
            train_scores, validation_scores = project(x_train[tr], x_train[va])
            for column, c in enumerate(c_grid):
                weights, bias = fit_logistic(train_scores, labels[tr], c, device)
                totals[column] += deg_scores(labels[va], predict_classes(weights, bias, validation_scores))["F1"]
        totals /= len(pairs)
        scores = {float(c): float(s) for c, s in zip(c_grid, totals)}
        best = float(c_grid[int(np.argmax(totals))])
    else:
        best = float(c_grid[0])
    train_scores, test_scores = project(x_train, x_test)
    weights, bias = fit_logistic(train_scores, labels, best, device)
    return LogisticFit(predict_classes(weights, bias, test_scores), best, scores, q)
