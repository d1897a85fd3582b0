"""Threads for evaluate's independent pieces (stores, inner splits, PCA fits).

NumPy's sorts, gathers and products, SciPy's sparse products and the eigensolver of
:mod:`embhub.evaluate.eigen` release the GIL, so threads keep every core busy without copying the fold's
responses into other processes. While workers run, BLAS is held to one thread each: OpenBLAS threads
spinning against each other on a loaded two-core machine were measured several times slower than one
thread per worker.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from functools import lru_cache
from typing import Callable, Iterable, TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def resolve_jobs(jobs: int | None) -> int:
    """``jobs`` ≤ 0 or None means one worker per available core."""
    return available_cores() if not jobs or jobs <= 0 else int(jobs)


def parallel_map(function: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    """``[function(item) for item in items]``, on up to ``workers`` threads, results in item order."""
    items = list(items)
    workers = min(workers, len(items))
    if workers <= 1:
        return [function(item) for item in items]
    with one_blas_thread(workers), ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, items))


def pipeline_map(stages: list[Callable], items: Iterable, workers: int) -> list:
    """``[stages[-1](…stages[0](item)) for item in items]``, on up to ``workers`` threads, results in item order.

    An item's next stage is queued as soon as its previous one ends, and worker i takes stage i mod
    len(stages) first (the oldest queued task of it), other stages only when it has none: different stages
    run side by side, e.g. a compute-bound Gram product beside a memory-bound eigensolve, which share two
    cores better than two eigensolves do. The first exception is raised.
    """
    items = list(items)
    workers = min(workers, len(items))
    if workers <= 1:
        results = []
        for value in items:
            for stage in stages:
                value = stage(value)
            results.append(value)
        return results
    queued: list[deque] = [deque() for _ in stages]
    queued[0].extend(enumerate(items))
    results: list = [None] * len(items)
    failures: list[BaseException] = []
    remaining = [len(items)]
    ready = threading.Condition()

    def next_task(preferred: int):
        with ready:
            while True:
                if failures or remaining[0] == 0:
                    return None
                for stage in [preferred] + [s for s in range(len(stages)) if s != preferred]:
                    if queued[stage]:
                        return stage, *queued[stage].popleft()
                ready.wait()

    def work(preferred: int) -> None:
        while (task := next_task(preferred)) is not None:
            stage, index, value = task
            try:
                value = stages[stage](value)
            except BaseException as error:  # noqa: BLE001 (re-raised on the calling thread)
                with ready:
                    failures.append(error)
                    ready.notify_all()
                return
            with ready:
                if stage + 1 < len(stages):
                    queued[stage + 1].append((index, value))
                else:
                    results[index] = value
                    remaining[0] -= 1
                ready.notify_all()

    with one_blas_thread(workers):
        threads = [threading.Thread(target=work, args=(i % len(stages),), daemon=True) for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]
    return results


def one_blas_thread(workers: int):
    """A context holding BLAS to one thread when ``workers`` > 1 of our threads share the cores.

    Use it around a whole multi-threaded stretch, not only the parallel calls: after each call an idle
    OpenBLAS thread keeps spinning on its core for a while, and takes that core from the next parallel step.
    """
    return _blas_controller().limit(limits=1) if workers > 1 else nullcontext()


@lru_cache(maxsize=1)
def _blas_controller():
    """Finding the loaded BLAS libraries takes milliseconds; do it once, not per call.

    SciPy's LAPACK (the eigensolver's) comes with its own OpenBLAS, apart from NumPy's. It is loaded first:
    a library loaded after the scan is not held, and two eigensolves on two workers then ran four BLAS
    threads on two cores.
    """
    import scipy.linalg  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def row_blocks(n: int, workers: int) -> list[slice]:
    """``n`` rows cut into ``workers`` near-equal contiguous blocks (one block when ``workers`` ≤ 1)."""
    edges = np.linspace(0, n, max(1, min(workers, n)) + 1).astype(int)
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
