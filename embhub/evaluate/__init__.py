"""``embhub evaluate``: which embedding predicts perturbation responses best, under the study's protocol.

The data flows ``coverage`` (align a store with a dataset) → ``projection`` (standardise → PCA) →
``knn`` / ``lasso`` / ``deg`` (estimators with inner cross-validation) → ``metrics`` → ``results``
(the tidy table) → ``summary`` / ``plots``. ``runner.evaluate`` drives it for stores × cell lines × folds.
Heavy libraries (scikit-learn, torch, matplotlib) are imported inside the functions that need them.
"""
