"""Keep freed host memory in the process, so that XLA's CPU programs stop page-faulting.

XLA's CPU runtime allocates the temporaries of a compiled program as one block per call: 2.5 GiB
for a bert-base training step at batch 16. glibc serves a block that large with ``mmap`` and gives it
back to the kernel when it is freed, so every call writes into fresh pages, and the kernel
faults and zeroes each of them: about 660,000 page faults and 1.2 s of kernel time per step on
this project's 2-core CPU, a tenth of the step. PyTorch does not pay this: its buffers are
one per tensor, small enough for glibc to recycle within its heap.

`keep_freed_host_memory` tells glibc (``mallopt``) to serve every block from its heap
(``M_MMAP_MAX = 0``), never to give the heap's free top back (``M_TRIM_THRESHOLD``), and to keep one
heap for all threads (``M_ARENA_MAX = 1``: XLA allocates on its worker threads, whose own heaps
are capped at 64 MiB and would fall back to ``mmap``). The next call then reuses the same pages. The
price: the process keeps its peak host memory instead of returning it between calls.

The last setting acts only on threads that have not allocated yet, so call this before JAX runs
anything (`mer-jax` does, unless ``--nokeep_host_memory``). Elsewhere than on Linux with glibc it
does nothing and returns False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
SETTINGS = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, -1), (M_ARENA_MAX, 1))  # -1: the largest size_t


def keep_freed_host_memory() -> bool:
    """Apply `SETTINGS` to this process's malloc; True where glibc took them all."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  glibc only: musl's mallopt accepts nothing
    except (OSError, AttributeError):
        return False
    return all(libc.mallopt(option, value) == 1 for option, value in SETTINGS)
