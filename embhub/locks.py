"""One writer at a time per output: a second extraction, import or preparation into the same place stops at
once instead of interleaving its batches with the first one's.

The lock is an OS file lock, so it goes with the process however the process ends. Its file lives under
``$EMBHUB_HOME/locks`` (named after the output's resolved path), not beside the output, so users' folders
hold only what they asked for.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from embhub.errors import StoreError
from embhub.paths import embhub_home


def lock_path(out: Path) -> Path:
    resolved = Path(out).expanduser().resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    return embhub_home() / "locks" / f"{resolved.name}-{digest}.lock"


@contextmanager
def sole_writer(out: Path, what: str) -> Iterator[None]:
    """Hold ``out``'s lock for the block; if another process holds it, a one-line :class:`StoreError`."""
    from filelock import FileLock, Timeout

    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise StoreError(
            f"{out} is being written by another embhub process right now; wait for that {what} to finish "
            "(then run this again to resume or reuse it) or choose another --out"
        ) from None
    try:
        yield
    finally:
        lock.release()
