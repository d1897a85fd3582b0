"""``embhub fuse``: one transformer reading many embedding stores at once (the study's fusion model).

The data flows ``data`` (stack a prepared dataset's cell lines, look every perturbation up in every store)
→ ``splits`` (outer fold, then 20 % of training perturbations for validation) → ``search`` / ``train``
(Optuna over ``model``'s hyperparameters, early stopping) → ``scoring`` (rows of the shared results table)
→ ``ablation`` (attention per source, leave-one-source-out) → ``output`` / ``plots``; ``concat_knn`` is the
simple baseline. ``run.fuse_dataset`` drives it. Importing this package loads neither torch nor optuna.
"""
