"""Where the runner's large tensors come from: the heap, not fresh pages.

glibc's malloc serves every allocation above its mmap threshold (at most
32 MiB, by its own adaptive rule) with newly mapped pages, and unmaps them on
free. A Demucs segment allocates and frees tensors of 30–100 MiB at every
layer, so the kernel maps, faults in and zeroes each of them again: measured
on 2 AVX-512 cores, a GroupNorm over a 66 MB float32 tensor took 18.7 ms
instead of 2.3 ms, and one htdemucs segment through the official modules
2.14 s instead of 1.67 s. PyTorch's own CPU tuning guide makes the same point
with jemalloc or tcmalloc; glibc's ``mallopt`` reaches it without another
library.

So the runner, a process that does nothing but separate, raises both
thresholds for a Demucs job (``keep_large_buffers``): buffers up to 1 GiB come
from the heap and freed memory stays there for the next layer. After each job
``release_free_memory`` hands the free part of the heap back to the system,
so an idle runner holds its model, not the last job's buffers. Peak memory
grows a little, as freed blocks wait in the heap for reuse instead of being
unmapped: measured on 30 s with full-size htdemucs 1148 → 1175 MiB (and
9.6 → 7.8 s), on 5 minutes with a tiny htdemucs 646 → 745 MiB (13.4 → 6.4 s).

RoFormer jobs (and ensembles with a RoFormer member) keep glibc's own
thresholds (``default_large_buffers``). The heap made them 1.55× faster too,
but their peak memory grew by a third or more (full-size BS-RoFormer-SW on
10 s: 4303 → 5989 MiB; Mel-Band RoFormer 2332 → 3322 MiB): their long-lived
buffers fragment the heap, and they are already the memory-hungry models.

Other C libraries (macOS, musl) are left as they are: there is no
``mallopt`` to call, and nothing else changes.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

# mallopt's parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
LARGE_BUFFER_BYTES = 1 << 30
# Where glibc's adaptive thresholds settle on 64-bit systems once large blocks
# have been freed (its DEFAULT_MMAP_THRESHOLD_MAX, and twice that for trimming):
# once set through mallopt the thresholds no longer adapt, so these stand in.
DEFAULT_MMAP_BYTES = 32 << 20
DEFAULT_TRIM_BYTES = 64 << 20


def glibc() -> ctypes.CDLL | None:
    """The running glibc, or None on any other C library."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    # musl has no gnu_get_libc_version; only glibc's mallopt has these options.
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    return libc


def _set_thresholds(mmap_bytes: int, trim_bytes: int) -> bool:
    """Whether glibc took both thresholds (False on other C libraries)."""
    libc = glibc()
    if libc is None:
        log.info("not glibc: large buffers stay with the C library's defaults")
        return False
    taken = (
        libc.mallopt(M_MMAP_THRESHOLD, mmap_bytes) == 1
        and libc.mallopt(M_TRIM_THRESHOLD, trim_bytes) == 1
    )
    if not taken:
        log.warning("glibc refused the thresholds %d and %d", mmap_bytes, trim_bytes)
    return taken


def keep_large_buffers() -> bool:
    """Serve allocations up to ``LARGE_BUFFER_BYTES`` from the heap and keep that
    much freed memory there; whether the C library took both settings."""
    return _set_thresholds(LARGE_BUFFER_BYTES, LARGE_BUFFER_BYTES)


def default_large_buffers() -> None:
    """Back to glibc's own behaviour for large buffers: pages of their own."""
    _set_thresholds(DEFAULT_MMAP_BYTES, DEFAULT_TRIM_BYTES)


def large_buffers_for(roformer: bool) -> bool:
    """The setting for a job: the heap for Demucs models, glibc's defaults for
    a job with a RoFormer model (above); whether large buffers are on the heap."""
    if roformer:
        default_large_buffers()
        return False
    return keep_large_buffers()


def release_free_memory() -> None:
    """Give the heap's free memory back to the system (after a job)."""
    libc = glibc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
