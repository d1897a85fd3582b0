"""Missing sources are invisible: replacing a masked-out source's vector by garbage changes nothing."""

import numpy as np
import pytest
import torch

from embhub.fuse.config import FusionConfig
from embhub.fuse.model import FusionModel
from embhub.fuse.splits import fold_rows
from embhub.fuse.train import cls_attention, predict, train_fusion

from tests.fuse.conftest import small_config


def random_batch(generator, dims, batch=8):
    sources = [torch.randn(batch, d, generator=generator) for d in dims]
    present = torch.rand(batch, len(dims), generator=generator) > 0.4
    present[:, 0] = True
    return sources, present, torch.randint(0, 2, (batch,), generator=generator)


@pytest.mark.parametrize("cell_line", ["token", "add"])
@pytest.mark.parametrize("gate", [False, True])
def test_masked_source_garbage_leaves_outputs_and_attention_unchanged(cell_line, gate):
    torch.manual_seed(0)
    dims = [6, 5, 7]
    model = FusionModel(dims, 2, 11, FusionConfig(d_model=12, n_heads=3, n_layers=3, gate=gate, cell_line=cell_line)).eval()
    sources, present, lines = random_batch(torch.Generator().manual_seed(1), dims)
    with torch.no_grad():
        before, attention = model(sources, present, lines, return_attention=True)
        for s in range(len(dims)):
            garbage = [x.clone() for x in sources]
            garbage[s][~present[:, s]] = torch.tensor(float("nan"))
            garbage[s][~present[:, s], 0] = 1e30
            assert torch.equal(model(garbage, present, lines), before)
        for weights in attention:
            assert torch.all(weights[:, :, :, 1 : 1 + len(dims)][~present[:, None, None, :].expand(-1, 3, weights.shape[2], -1)] == 0)


def test_visible_sources_do_change_the_output():
    torch.manual_seed(0)
    model = FusionModel([6, 5], 2, 4, FusionConfig(d_model=12, n_heads=3, n_layers=2)).eval()
    sources, present, lines = random_batch(torch.Generator().manual_seed(2), [6, 5])
    present[:] = True
    with torch.no_grad():
        before = model(sources, present, lines)
        changed = [sources[0], sources[1] + 3.0]
        assert not torch.allclose(model(changed, present, lines), before)
        hidden = present.clone()
        hidden[:, 1] = False
        assert not torch.allclose(model(sources, hidden, lines), before)  # masking is not the same as a zero input


def test_trained_model_prediction_ignores_garbage_in_a_missing_source(screen_data):
    rows = fold_rows(screen_data, 1)
    trained = train_fusion(screen_data, rows.fit, rows.validation, small_config(max_epochs=3), cpu_threads=1)
    half = screen_data.source_names.index("half")
    lacking = rows.test[~screen_data.present[screen_data.row_pert[rows.test], half]]
    assert lacking.size > 10
    before = predict(trained, screen_data, rows.test)
    attention_before = cls_attention(trained, screen_data, rows.test)
    original = screen_data.sources[half].copy()
    try:
        perts = screen_data.row_pert[lacking]
        screen_data.sources[half][perts] = np.random.default_rng(0).normal(scale=1e4, size=(len(perts), original.shape[1]))
        np.testing.assert_array_equal(predict(trained, screen_data, rows.test), before)
        np.testing.assert_array_equal(cls_attention(trained, screen_data, rows.test), attention_before)
        present_rows = rows.test[screen_data.present[screen_data.row_pert[rows.test], half]]
        screen_data.sources[half][screen_data.row_pert[present_rows]] += 5.0
        assert not np.allclose(predict(trained, screen_data, present_rows), before[np.isin(rows.test, present_rows)])
    finally:
        screen_data.sources[half][:] = original
    is_lacking = np.isin(rows.test, lacking)
    assert np.all(attention_before[is_lacking, 1 + half] == 0)
    assert np.all(attention_before[~is_lacking, 1 + half] > 0)
