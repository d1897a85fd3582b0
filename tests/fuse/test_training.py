"""Training is reproducible on the CPU, keeps the best validation epoch, and uses the study's losses."""

import numpy as np
import torch

from embhub.fuse.splits import fold_rows, split_validation
from embhub.fuse.config import FusionConfig
from embhub.fuse.model import FusionModel
from embhub.fuse.train import context_means, deg_class_weights, input_statistics, predict, task_loss, train_fusion

from tests.fuse.conftest import small_config


def test_same_seed_gives_the_same_model_on_cpu(screen_data):
    rows = fold_rows(screen_data, 2)
    config = small_config(max_epochs=3, dropout=0.1, modal_drop=0.2)
    first = train_fusion(screen_data, rows.fit, rows.validation, config, seed=5, cpu_threads=1)
    second = train_fusion(screen_data, rows.fit, rows.validation, config, seed=5, cpu_threads=1)
    other = train_fusion(screen_data, rows.fit, rows.validation, config, seed=6, cpu_threads=1)
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key
    assert [h["validation_loss"] for h in first.history] == [h["validation_loss"] for h in second.history]
    assert not np.array_equal(predict(first, screen_data, rows.test), predict(other, screen_data, rows.test))


def test_best_validation_epoch_is_kept_and_early_stopping_stops(screen_data):
    rows = fold_rows(screen_data, 0)
    trained = train_fusion(screen_data, rows.fit, rows.validation, small_config(max_epochs=40, patience=2, lr=3e-2), cpu_threads=1)
    losses = [h["validation_loss"] for h in trained.history]
    assert trained.best_epoch == int(np.argmin(losses)) + 1
    assert len(losses) < 40 and len(losses) == trained.best_epoch + 2
    y = screen_data.lfc[rows.validation]
    y_hat = predict(trained, screen_data, rows.validation)
    assert np.isclose(np.linalg.norm(y - y_hat, axis=1).mean(), trained.best_validation_loss, rtol=1e-4)


def test_validation_holds_out_a_fifth_of_training_perturbations_never_the_test_fold(screen_data):
    rows = fold_rows(screen_data, 3)
    ids = screen_data.row_pert_ids
    fit_ids, validation_ids, test_ids = set(ids[rows.fit]), set(ids[rows.validation]), set(ids[rows.test])
    assert not fit_ids & validation_ids and not (fit_ids | validation_ids) & test_ids
    assert len(validation_ids) == round(0.2 * (len(fit_ids) + len(validation_ids)))
    again_fit, again_validation = split_validation(ids, np.sort(np.concatenate([rows.fit, rows.validation])))
    assert set(ids[again_validation]) == validation_ids


def test_input_statistics_use_only_training_perturbations_that_have_the_source(screen_data):
    rows = np.flatnonzero(screen_data.row_fold != 0)
    means, scales = input_statistics(screen_data, rows)
    half = screen_data.source_names.index("half")
    perts = np.unique(screen_data.row_pert[rows])
    have = perts[screen_data.present[perts, half]]
    np.testing.assert_allclose(means[half], screen_data.sources[half][have].mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scales[half], screen_data.sources[half][have].std(axis=0), rtol=1e-4)


def test_lfc_loss_is_the_mean_l2_norm():
    rng = np.random.default_rng(0)
    y, y_hat = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    loss = task_loss(torch.tensor(y_hat), torch.tensor(y), "lfc", None)
    assert np.isclose(float(loss), np.linalg.norm(y - y_hat, axis=1).mean())


def test_deg_loss_is_the_balanced_per_gene_cross_entropy(screen_data):
    rng = np.random.default_rng(1)
    n, genes = 40, 6
    labels = rng.choice([-1, 0, 1], size=(n, genes), p=[0.1, 0.8, 0.1]).astype(np.int8)
    labels[:, 0] = 0  # a gene with one class only
    logits = rng.normal(size=(n, genes * 3))

    class Labels:
        deg = labels

    weights = deg_class_weights(Labels, np.arange(n))
    loss = task_loss(torch.tensor(logits), torch.tensor(labels.astype(np.int64) + 1), "deg", torch.tensor(weights))
    expected = []
    for g in range(genes):
        counts = np.bincount(labels[:, g] + 1, minlength=3)
        w = np.where(counts > 0, n / (3 * np.maximum(counts, 1)), 0.0)
        expected.append(float(torch.nn.functional.cross_entropy(
            torch.tensor(logits.reshape(n, genes, 3)[:, g]), torch.tensor(labels[:, g] + 1, dtype=torch.long),
            weight=torch.tensor(w),
        )))
    assert np.isclose(float(loss), np.mean(expected), rtol=1e-6)


def test_mixed_precision_path_trains_and_predicts(screen_data):
    """bf16 autocast on the CPU stands in for the GPU path (same code: autocast, fp32 loss and softmax)."""
    rows = fold_rows(screen_data, 1)
    config = small_config(max_epochs=4)
    mixed = train_fusion(screen_data, rows.fit, rows.validation, config, precision="bf16", cpu_threads=1)
    full = train_fusion(screen_data, rows.fit, rows.validation, config, precision="fp32", cpu_threads=1)
    assert mixed.dtype == torch.bfloat16 and full.dtype == torch.float32
    predictions = predict(mixed, screen_data, rows.test)
    assert predictions.dtype == np.float32 and np.isfinite(predictions).all()
    assert mixed.history[-1]["validation_loss"] < mixed.history[0]["validation_loss"]
    assert abs(mixed.best_validation_loss - full.best_validation_loss) < 0.1 * full.best_validation_loss


def test_context_mean_offset_starts_at_each_cell_lines_mean_fit_response(screen_data):
    rows = fold_rows(screen_data, 1)
    offset = context_means(screen_data, rows.fit)
    for line in range(len(screen_data.cell_lines)):
        own = rows.fit[screen_data.row_cell_line[rows.fit] == line]
        np.testing.assert_allclose(offset[line], screen_data.lfc[own].mean(axis=0), rtol=1e-5, atol=1e-6)
    model = FusionModel([m.shape[1] for m in screen_data.sources], 2, offset.shape[1], FusionConfig(d_model=12, n_heads=3, n_layers=1))
    model.start_from(torch.as_tensor(offset))
    batch = rows.test[:9]
    perts = screen_data.row_pert[batch]
    with torch.no_grad():
        output = model.eval()(
            [torch.as_tensor(s[perts]) for s in screen_data.sources],
            torch.as_tensor(screen_data.present[perts]),
            torch.as_tensor(screen_data.row_cell_line[batch]),
        )
    np.testing.assert_array_equal(output.numpy(), offset[screen_data.row_cell_line[batch]])


def test_context_mean_offset_lowers_the_first_epochs_loss(screen_data):
    rows = fold_rows(screen_data, 0)
    config = small_config(max_epochs=1)
    study = train_fusion(screen_data, rows.fit, rows.validation, config, cpu_threads=1)
    residual = train_fusion(screen_data, rows.fit, rows.validation, config.updated(response_offset="context_mean"), cpu_threads=1)
    assert residual.history[0]["train_loss"] < study.history[0]["train_loss"]
