"""The GPU kNN path (torch, float64) against the NumPy path: the code is device-agnostic, so it runs here on
the CPU; on a CUDA machine ``embhub evaluate`` picks it by itself (``knn_device`` in run metadata)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from embhub.evaluate.device_knn import fit_projections, knn_predict  # noqa: E402
from embhub.evaluate.knn import CVProjections, knn_cv_predict  # noqa: E402
from embhub.evaluate.runner import evaluate  # noqa: E402

CPU = torch.device("cpu")


@pytest.mark.parametrize("dim", [12, 150], ids=["scatter", "gram"])
def test_device_projections_and_knn_equal_the_numpy_path(dim):
    rng = np.random.default_rng(11)
    n_train, n_test, genes = 120, 30, 25
    latent = rng.normal(size=(n_train + n_test, 4))
    x = latent @ rng.normal(size=(4, dim)) + 0.5 * rng.normal(size=(n_train + n_test, dim))
    x[:, 0] = 3.0  # constant feature
    y = latent @ rng.normal(size=(4, genes)) + 0.2 * rng.normal(size=(n_train + n_test, genes))
    x_train, x_test, y_train = x[:n_train], x[n_train:], y[:n_train]
    train_rows = np.arange(n_train)
    gram = y_train @ y_train.T
    grid = (3, 5, 10, 20)

    ours = fit_projections(x_train, x_test, 10, 5, 42, CPU)
    reference = CVProjections.fit(x_train, x_test, 10, 5, 42)
    for (_, _, a_train, a_val), (_, _, b_train, b_val) in zip(ours.splits, reference.splits):
        np.testing.assert_allclose(a_val @ a_train.T, b_val @ b_train.T, atol=1e-8)
    np.testing.assert_allclose(ours.test_scores @ ours.train_scores.T, reference.test_scores @ reference.train_scores.T, atol=1e-8)

    on_device = knn_predict(ours, gram, train_rows, y_train, grid, CPU)
    on_cpu = knn_cv_predict(reference, gram, train_rows, y_train, grid)
    assert on_device.k == on_cpu.k
    assert on_device.cv_l2 == pytest.approx(on_cpu.cv_l2, rel=1e-10)
    np.testing.assert_allclose(on_device.predictions, on_cpu.predictions, rtol=1e-10, atol=1e-12)


def test_runner_on_the_device_path_gives_the_numpy_table(toy, stores, monkeypatch):
    from embhub.datasets.prepared import PreparedDataset
    from embhub.evaluate import runner

    dataset = PreparedDataset.open(toy.path)
    chosen = [stores["wide"], stores["partial"]]
    reference = evaluate(dataset, chosen, folds=[0, 2], jobs=1, device="cpu")
    monkeypatch.setattr(runner, "cuda_device", lambda device: CPU)
    on_device = evaluate(dataset, chosen, folds=[0, 2], jobs=1)
    assert on_device.metadata["knn_device"] == "cpu" and reference.metadata["knn_device"] == "cpu"
    keys = ["cell_line", "fold", "method", "embedding", "metric", "subset"]
    a = reference.results.sort_values(keys).reset_index(drop=True)
    b = on_device.results.sort_values(keys).reset_index(drop=True)
    np.testing.assert_array_equal(a[keys].to_numpy(), b[keys].to_numpy())
    np.testing.assert_allclose(a.value.to_numpy(), b.value.to_numpy(), rtol=1e-9, equal_nan=True)
    assert list(a.estimator_params.map(lambda p: '"k"' in p)) == list(b.estimator_params.map(lambda p: '"k"' in p))


def test_no_nvidia_driver_means_no_torch_import_for_auto(monkeypatch):
    import os

    from embhub.evaluate import device_knn

    monkeypatch.setattr(os.path, "exists", lambda path: False)
    assert device_knn.cuda_device("auto") is None
    assert device_knn.cuda_device("cpu") is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_evaluate_on_a_cuda_gpu_gives_the_cpu_table(toy, stores):
    """The real GPU, two worker threads (the device's linear-algebra library loads lazily, which fails when
    threads race to it), kNN and the DEG logistic model on CUDA against the CPU run of the same data."""
    from embhub.datasets.prepared import PreparedDataset
    from embhub.evaluate.protocol import ProtocolSettings

    dataset = PreparedDataset.open(toy.path)
    chosen = [stores["wide"], stores["partial"]]
    settings = ProtocolSettings(c_grid=(1e3,))
    reference = evaluate(dataset, chosen, folds=[0, 2], jobs=2, deg=True, settings=settings, device="cpu")
    on_gpu = evaluate(dataset, chosen, folds=[0, 2], jobs=2, deg=True, settings=settings, device="cuda")
    assert on_gpu.metadata["knn_device"].startswith("cuda") and reference.metadata["knn_device"] == "cpu"
    keys = ["cell_line", "fold", "method", "embedding", "metric", "subset"]
    a = reference.results.sort_values(keys).reset_index(drop=True)
    b = on_gpu.results.sort_values(keys).reset_index(drop=True)
    np.testing.assert_array_equal(a[keys].to_numpy(), b[keys].to_numpy())
    classified = a.metric.isin(["F1", "recall", "precision"]).to_numpy()
    np.testing.assert_allclose(a.value[~classified], b.value[~classified], rtol=1e-9, equal_nan=True)
    # float32 L-BFGS on two devices: a class can flip where a logit is a near tie, nothing more
    np.testing.assert_allclose(a.value[classified], b.value[classified], atol=0.02)


def test_device_projections_with_as_many_components_as_rows_equal_the_numpy_path():
    rng = np.random.default_rng(3)
    x_train, x_test = rng.uniform(size=(48, 100)), rng.uniform(size=(12, 100))
    ours = fit_projections(x_train, x_test, 100, 5, 42, CPU)
    reference = CVProjections.fit(x_train, x_test, 100, 5, 42)
    assert ours.n_components == min(len(tr) for tr, _, _, _ in ours.splits)
    for (_, _, a_train, a_val), (_, _, b_train, b_val) in zip(ours.splits, reference.splits):
        np.testing.assert_allclose(a_val @ a_val.T, b_val @ b_val.T, atol=1e-8)
        np.testing.assert_allclose(a_val @ a_train.T, b_val @ b_train.T, atol=1e-8)
