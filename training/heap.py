"""Keep the C heap's freed training buffers for the next step (glibc only).

A CPU training step allocates and frees a few dozen [users, anime] float buffers (15 MB each
at 512 users by 7,255 anime). glibc serves blocks that large from fresh ``mmap`` pages or
trims them from the heap top on free, so every step pays the kernel to map and zero the same
memory again: ~95k page faults and ~20% of an epoch's CPU time. While :func:`steady_heap`
is active, blocks up to 32 MB come from the heap and freed memory stays there; on exit the
thresholds go back to glibc's defaults (128 KiB; glibc's own raising of them as large blocks
are freed stays off for the rest of the process) and the free memory is handed back to the
system, so the process keeps no more than it did before. The bot retrains in its own process
(``python -m training.job``), so serving never runs under these settings. Elsewhere (no glibc)
it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_MAX = 32 * 1024 * 1024  # the largest mmap threshold glibc accepts on 64-bit
_TRIM_KEEP = 2**31 - 1  # (bytes, mallopt takes an int) never trim while training
_DEFAULT = 128 * 1024  # glibc's default for both thresholds

_lock = threading.Lock()
_depth = 0
_tuned = False


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # not glibc: no mallopt / malloc_trim
        return None
    return libc


def _set(libc: ctypes.CDLL, mmap_threshold: int, trim_threshold: int) -> bool:
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    )


@contextmanager
def steady_heap() -> Iterator[bool]:
    """Within the block, freed buffers stay in the heap for reuse; yields whether the
    allocator could be tuned (False off glibc). Nested and concurrent uses share one tuning,
    undone when the last one leaves."""
    global _depth, _tuned
    libc = _libc()
    if libc is None:
        yield False
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            _tuned = _set(libc, _MMAP_MAX, _TRIM_KEEP)
        tuned = _tuned
    try:
        yield tuned
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _set(libc, _DEFAULT, _DEFAULT)
                libc.malloc_trim(0)
