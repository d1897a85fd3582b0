"""The largest eigenpairs of a symmetric matrix, from LAPACK's ``dsyevr``, solved without holding the GIL.

PCA needs only the top q eigenvectors, and ``dsyevr`` computes just those (tridiagonal reduction, then the
wanted pairs by MRRR). SciPy wraps it as ``scipy.linalg.eigh(subset_by_index=…)``, but that wrapper keeps
the GIL for the whole solve, so the fits of several splits or stores on threads run one after another.
SciPy also publishes the same LAPACK build as C function pointers for Cython (``scipy.linalg.cython_lapack``);
calling that pointer through :mod:`ctypes` releases the GIL. Where the pointer cannot be had, SciPy's wrapper
is used, with the same results.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache

import numpy as np

SMALL = 400
"""Up to this many rows NumPy's full solver (which also releases the GIL) is as fast as the subset solver."""


def top_eigenpairs(symmetric: np.ndarray, q: int, lower: bool = True, overwrite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The q largest eigenvalues ``(q,)`` and their eigenvectors ``(m, q)`` of a symmetric ``(m, m)`` matrix,
    largest first. Only the ``lower`` (or upper) triangle is read; ``overwrite`` lets the solver use the
    matrix as its workspace instead of a copy."""
    m = symmetric.shape[0]
    if m <= SMALL or q >= m:
        values, vectors = np.linalg.eigh(symmetric, UPLO="L" if lower else "U")
        values, vectors = values[m - q :], vectors[:, m - q :]
    elif (solver := _dsyevr()) is not None:
        values, vectors = _subset_without_gil(solver, symmetric, q, lower, overwrite)
    else:
        from scipy.linalg import eigh

        values, vectors = eigh(symmetric, lower=lower, subset_by_index=[m - q, m - 1], driver="evr")
    return values[::-1], vectors[:, ::-1]


def _subset_without_gil(solver, symmetric: np.ndarray, q: int, lower: bool, overwrite: bool) -> tuple[np.ndarray, np.ndarray]:
    m = symmetric.shape[0]
    if symmetric.flags.c_contiguous and not symmetric.flags.f_contiguous:
        symmetric = symmetric.T  # the same matrix, triangles swapped in memory
        lower = not lower
    a = np.asarray(symmetric, dtype=np.float64, order="F") if overwrite else np.array(symmetric, dtype=np.float64, order="F")
    values = np.empty(m)
    vectors = np.empty((m, q), order="F")
    support = np.empty(2 * q, dtype=np.intc)
    found, info = ctypes.c_int(0), ctypes.c_int(0)
    bound, tolerance = ctypes.c_double(0.0), ctypes.c_double(0.0)

    def call(work: np.ndarray, lwork: int, iwork: np.ndarray, liwork: int) -> None:
        solver(b"V", b"I", b"L" if lower else b"U", _int(m), a.ctypes.data, _int(m), ctypes.byref(bound),
               ctypes.byref(bound), _int(m - q + 1), _int(m), ctypes.byref(tolerance), ctypes.byref(found),
               values.ctypes.data, vectors.ctypes.data, _int(m), support.ctypes.data, work.ctypes.data, _int(lwork),
               iwork.ctypes.data, _int(liwork), ctypes.byref(info))

    work_size, iwork_size = np.empty(1), np.empty(1, dtype=np.intc)
    call(work_size, -1, iwork_size, -1)
    call(np.empty(int(work_size[0])), int(work_size[0]), np.empty(int(iwork_size[0]), dtype=np.intc), int(iwork_size[0]))
    if info.value != 0 or found.value != q:
        raise np.linalg.LinAlgError(f"LAPACK dsyevr failed (info {info.value}, {found.value} of {q} eigenpairs)")
    return values[:q], vectors


def _int(value: int):
    return ctypes.byref(ctypes.c_int(value))


@lru_cache(maxsize=1)
def _dsyevr():
    """``dsyevr`` from SciPy's Cython LAPACK table as a ctypes function (which drops the GIL), or None."""
    try:
        from scipy.linalg import cython_lapack

        capsule = cython_lapack.__pyx_capi__["dsyevr"]
        name = ctypes.pythonapi.PyCapsule_GetName
        name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
        pointer = ctypes.pythonapi.PyCapsule_GetPointer
        pointer.restype, pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        address = pointer(capsule, name(capsule))
    except (ImportError, KeyError, AttributeError, ValueError):
        return None
    if not address:
        return None
    integer, real, buffer = ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_double), ctypes.c_void_p
    signature = ctypes.CFUNCTYPE(
        None,
        ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,  # jobz, range, uplo
        integer, buffer, integer,  # n, a, lda
        real, real, integer, integer, real,  # vl, vu, il, iu, abstol
        integer, buffer, buffer, integer, buffer,  # m, w, z, ldz, isuppz
        buffer, integer, buffer, integer, integer,  # work, lwork, iwork, liwork, info
    )
    return signature(address)
