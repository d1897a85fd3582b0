"""DEG building blocks against scipy and the study's tie table."""

import numpy as np
from scipy import stats

from embhub.datasets.deg import benjamini_hochberg, moments, plate_vote, welch_scores
from tests.datasets.layouts import bh_by_hand


def test_plate_vote_tie_table():
    votes = np.array([[0, 0, 1, 1, -1], [1, -1, -1, 0, 1], [1, -1, 0, -1, -1]]).T
    # genes: (0,1,1)→1, (0,-1,-1)→-1, (1,-1,0) all tied→0, (1,0,-1) tied→0, (-1,1,-1)→-1
    assert plate_vote(votes.T).tolist() == [1, -1, 0, 0, -1]
    assert plate_vote(np.array([[0, 1, 1, -1], [1, 0, -1, 0]])).tolist() == [1, 1, 0, -1]


def test_welch_from_moments_equals_scipy_on_cells():
    rng = np.random.default_rng(0)
    group, reference = rng.gamma(2, 1, (40, 50)), rng.gamma(2.2, 1, (70, 50))
    group[:, 0] = 1.0
    reference[:, 0] = 1.0
    mean, var = moments(group.sum(0)[None], (group**2).sum(0)[None], np.array([40]))
    ref_mean, ref_var = moments(reference.sum(0)[None], (reference**2).sum(0)[None], np.array([70]))
    scores, pvalues = welch_scores(mean, var, np.array([40]), ref_mean[0], ref_var[0], 70)
    t, p = stats.ttest_ind(group, reference, equal_var=False)
    np.testing.assert_allclose(scores[0], np.nan_to_num(t), atol=1e-8)
    np.testing.assert_allclose(pvalues[0], np.where(np.isnan(p), 1, p), atol=1e-10)
    np.testing.assert_allclose(benjamini_hochberg(pvalues[0]), bh_by_hand(pvalues[0]), atol=1e-12)
