"""The DEG task: the fusion model classifies genes −1/0/+1 better than the per-gene most frequent class."""

import numpy as np
from sklearn.metrics import f1_score

from embhub.fuse.data import load_fusion_data
from embhub.fuse.run import run_fusion
from embhub.fuse.splits import fold_rows
from embhub.fuse.train import predict, train_fusion

from tests.fuse.conftest import small_config


def macro_f1_over_present_classes(truth, predicted):
    scores = [
        f1_score(truth[:, g], predicted[:, g], labels=np.unique(truth[:, g]), average="macro", zero_division=0)
        for g in range(truth.shape[1])
    ]
    return float(np.mean(scores))


def test_deg_fusion_beats_the_most_frequent_class(screen):
    data = load_fusion_data(screen.dataset, list(screen.stores.values()), task="deg")
    rows = fold_rows(data, 0, "deg")
    assert data.deg_mask[rows.fit].all() and data.deg_mask[rows.test].all()
    assert len(rows.test) < int((data.row_fold == 0).sum())
    trained = train_fusion(data, rows.fit, rows.validation, small_config(max_epochs=15, lr=3e-3), "deg", cpu_threads=1)
    predicted = predict(trained, data, rows.test)
    assert set(np.unique(predicted)) <= {-1, 0, 1}
    truth = data.deg[rows.test]
    most_frequent = np.tile(np.array([np.bincount(c + 1, minlength=3).argmax() - 1 for c in data.deg[rows.fit].T]), (len(truth), 1))
    assert macro_f1_over_present_classes(truth, predicted) > macro_f1_over_present_classes(truth, most_frequent) + 0.2


def test_deg_run_writes_f1_rows(screen):
    data = load_fusion_data(screen.dataset, list(screen.stores.values()), task="deg")
    run = run_fusion(data, "deg", folds=[0], trials=0, config=small_config(max_epochs=2), cpu_threads=1)
    f1 = run.results[(run.results.metric == "F1") & (run.results.subset == "all")]
    assert len(f1) == 2 and set(run.results.method) == {"fusion"}
    assert f1.value.between(0, 1).all()
