"""Keep freed memory in the process, so that a training step does not page-fault its way back in.

A step frees and allocates the same large activations every time. glibc's malloc hands blocks
over its mmap threshold straight back to the kernel and trims the top of its heap beyond 128 KiB,
so each step faults every 4 KiB page of them in again (tens of thousands of faults per step on
the tiny preset, a few percent of the step in kernel time). :func:`keep_freed_memory` raises both
limits, as the ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` environment variables
would: freed memory stays in the process for the next step. Training calls it on the CPU
(:func:`mto_core.training.engine.train`, and ``mto bench``, to time what training runs). The setting is
the whole process's and lasts: the process keeps up to 1 GiB of freed memory per malloc arena
instead of handing it back. It changes nothing where ``MTO_KEEP_FREED_MEMORY=0`` is set, where
malloc settings come from the environment, or where the C library is not glibc; under a preloaded
allocator (tcmalloc, jemalloc) glibc still accepts the call, which then does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks up to 32 MiB come from the reusable heap
TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of freed heap before returning it
_done: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process. True if both are set."""
    global _done
    if _done is None:
        _done = _set_thresholds()
    return _done


def _set_thresholds() -> bool:
    env = os.environ
    if env.get("MTO_KEEP_FREED_MEMORY", "1") == "0" or "malloc" in env.get("GLIBC_TUNABLES", "") \
            or any(name in env for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False  # the user's settings win
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (macOS, musl without mallopt, Windows)
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
