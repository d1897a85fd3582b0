"""Laplacian eigenmap of a gene graph (Belkin & Niyogi 2003), with scipy's sparse eigensolver.

The embedding of node ``i`` is row ``i`` of ``D^{-1/2} U``, where ``U`` holds the eigenvectors of
the symmetric normalised Laplacian ``I - D^{-1/2} A D^{-1/2}`` with the smallest non-zero
eigenvalues (the constant vector, eigenvalue 0, is skipped). The graph must be connected. Each
column is scaled to unit root-mean-square and its sign fixed (largest entry positive), so the
result is the same on every run and machine up to solver tolerance.
"""

from __future__ import annotations

import numpy as np

DENSE_LIMIT = 400
"""Up to this many nodes (or 4 × the vectors asked for) a dense eigendecomposition runs; above, ARPACK."""


def laplacian_eigenmap(adjacency, dim: int, tolerance: float = 1e-6) -> np.ndarray:
    """Eigenmap ``(n_nodes, dim)`` of a connected symmetric adjacency matrix ``(n_nodes, n_nodes)``."""
    import scipy.sparse as sp

    n = adjacency.shape[0]
    if dim + 1 >= n:
        raise ValueError(f"a {dim}-dimensional eigenmap needs more than {dim + 1} nodes; the graph has {n}")
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inverse_sqrt = sp.diags(1.0 / np.sqrt(degree))
    normalised = (inverse_sqrt @ adjacency @ inverse_sqrt).tocsr()
    if n <= max(DENSE_LIMIT, 4 * (dim + 1)):
        import scipy.linalg

        values, vectors = scipy.linalg.eigh(normalised.toarray(), subset_by_index=[n - dim - 1, n - 1])
    else:
        from scipy.sparse.linalg import eigsh

        start = np.sqrt(degree) + np.linspace(0.0, 1.0, n)
        shifted = normalised + sp.identity(n, format="csr")
        values, vectors = eigsh(shifted, k=dim + 1, which="LA", v0=start, tol=tolerance)
    order = np.argsort(-values)
    vectors = vectors[:, order[1:]]
    embedding = vectors / np.sqrt(degree)[:, None]
    embedding /= np.sqrt((embedding**2).mean(axis=0, keepdims=True))
    signs = np.sign(embedding[np.abs(embedding).argmax(axis=0), np.arange(dim)])
    return (embedding * signs).astype(np.float32)
