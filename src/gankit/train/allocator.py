"""Keep freed CPU memory in the process, so that a training step does not page-fault each time.

glibc's malloc gives large freed blocks back to the OS (anything over its mmap threshold, and
the heap's top beyond its trim threshold). A GAN step allocates and frees the same activation
buffers every iteration, so each step touches fresh pages again: on fashion-resnet with a joint
D batch, `fill_` of a 4 MB gradient took 6 ms instead of 0.8, and the whole step ran 1.27x
faster once freed memory stayed (benchmarks/throughput.py). torch's CPU allocator has no cache
of its own, so the fix is glibc's: `mallopt`, the in-process form of the GLIBC_TUNABLES that
DESIGN.md measured. Written here with ctypes because no maintained package wraps mallopt.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameters from glibc's <malloc.h>, and the values set for them.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = {
    M_MMAP_THRESHOLD: 32 << 20,  # blocks up to 32 MiB (glibc's maximum) come from the heap
    M_TRIM_THRESHOLD: 1 << 30,  # the heap keeps up to 1 GiB of freed memory
    M_TOP_PAD: 256 << 20,  # and grows by 256 MiB at a time
}
_applied = False


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed memory for reuse (once per process).

    Returns:
        True when the settings hold (now or from an earlier call); False where there is no
        glibc (macOS, Windows, musl), which changes nothing but the speed.
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    # mallopt returns 1 on success, 0 for a parameter or value it refuses.
    _applied = all(mallopt(param, value) == 1 for param, value in SETTINGS.items())
    return _applied
