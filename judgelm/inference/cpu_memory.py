"""A CPU engine keeps the memory it frees, instead of giving it back to the kernel and faulting it in again.

glibc's malloc serves large blocks with ``mmap`` and returns them with ``munmap`` when freed (and trims the heap's
top), so every prefill's activations and every batch's KV cache arrive as fresh pages that the kernel zeroes one
4 KiB fault at a time: on the 52.5M bench model, PandaLM fast mode took ~400,000 minor faults per 24 units. torch's
CPU tuning guide and vLLM-CPU answer this with another allocator (jemalloc, tcmalloc) preloaded before start; the
same effect needs no preload: large blocks from the heap (no ``mmap``) and a heap trimmed only above 2 GiB, so freed
memory is reused. The price is a process whose resident memory stays at its peak, which a judging worker reaches
anyway on its next batch.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
M_MMAP_MAX = -4
TRIM_ABOVE = 2**31 - 1  # mallopt takes a C int: the largest it accepts


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse; False where the C library is not glibc (nothing done).
    Forked compute processes inherit the setting."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt, _ = libc.mallopt, libc.gnu_get_libc_version
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_ABOVE))
