"""Freed memory kept in the process while a run trains and evaluates on the CPU.

glibc's malloc gives each block above its mmap threshold (128 KiB at first, raised as such
blocks are freed, to 32 MiB at most) straight back to the kernel when it is freed, and trims
the top of its heap above 128 KiB. A training step on the CPU allocates and frees activations
of many megabytes in every layer, so each comes back as fresh pages that the kernel faults in
and zeroes, every step. Served from a heap that keeps what is freed, the steps fault a small
share of those pages and run faster (docs/performance.md has the figures and the
command that measures them). The price is memory: the heap holds the run's peak until the
final evaluation ends. After it, glibc's default values come back, though not its adjusting of
them as blocks are freed, which glibc ends for good once they are set.

tcmalloc through ``LD_PRELOAD`` does as well or better, but it needs a library installed and
set before the process starts; glibc's own ``mallopt`` needs nothing. A user who tunes malloc
(``MALLOC_*`` variables, ``GLIBC_TUNABLES``, a preloaded allocator) is left as they chose.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import sys
from collections.abc import Iterator

import torch

# mallopt's parameters and glibc's defaults for them (malloc/malloc.h, malloc/malloc.c).
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
#: The largest value mallopt takes (an int): within the block, the heap is never trimmed.
NEVER = 2**31 - 1


def tuned_by_user() -> bool:
    """Whether malloc was set up by whoever started the process, which ftrun leaves alone."""
    configured = [os.environ.get("GLIBC_TUNABLES", ""), os.environ.get("LD_PRELOAD", "")]  # tcmalloc, jemalloc, mimalloc
    return any(key.startswith("MALLOC_") for key in os.environ) or any("malloc" in value for value in configured)


@contextlib.contextmanager
def keep_freed_memory(device: torch.device) -> Iterator[None]:
    """Within the block, large blocks come from glibc's heap, which keeps what is freed; on the
    way out glibc's defaults return, and what the heap holds free goes back to the system.

    Only on the CPU (on a GPU, torch's CUDA allocator keeps freed blocks already), with glibc,
    and with malloc untuned.
    """
    if device.type != "cpu" or not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc" or tuned_by_user():
        yield
        return
    libc = ctypes.CDLL(None)  # the process's own C library, the one that serves torch's allocations
    libc.mallopt(M_MMAP_MAX, 0)  # no block of its own mapping: every one from the heap
    libc.mallopt(M_TRIM_THRESHOLD, NEVER)
    try:
        yield
    finally:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)
