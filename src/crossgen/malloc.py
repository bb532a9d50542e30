"""glibc's malloc set to keep freed memory for reuse, for torch's tensors on a CPU.

torch allocates every intermediate tensor of a CPU step with malloc and frees it at the end.
By default glibc serves a block above its mmap threshold (128 KiB at first, then adapting)
with a fresh mmap and gives free memory at the top of the heap above its trim threshold back
to the kernel, so each training step, generation step or embedding batch faults in and zeroes
the same megabytes of pages again. With both thresholds raised, freed blocks are reused: the
demo's system time fell from 28 to 4 CPU-seconds and its wall time from 330 to 303 s on two
cores, with byte-identical results (docs/DESIGN.md, section 5.3). The cost is that a process
keeps up to `TRIM_THRESHOLD` of freed memory instead of returning it.

`keep_freed_memory()` applies the setting to this process (glibc's `mallopt`) and, through
the environment variables glibc reads at start-up, to the processes it starts. A variable the
user has set wins, and elsewhere than glibc (macOS, Windows, musl) nothing changes.
"""

from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD = 64 << 20  # blocks of up to 64 MiB come from the heap (a step's largest is ~6 MiB)
TRIM_THRESHOLD = 128 << 20  # free memory kept at the top of the heap before it is returned
# glibc's mallopt parameters (malloc.h) and the environment variables with the same effect
_SETTINGS = (("MALLOC_MMAP_THRESHOLD_", -3, MMAP_THRESHOLD), ("MALLOC_TRIM_THRESHOLD_", -1, TRIM_THRESHOLD))
_done = False


def keep_freed_memory() -> list[str]:
    """Raise glibc's mmap and trim thresholds here and in child processes (see module doc);
    returns the variables this call set (none off glibc, on a second call, or where the user
    set them)."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return []
    _done = True
    libc = _glibc()
    if libc is None:
        return []
    applied = []
    for name, param, value in _SETTINGS:
        if name in os.environ:  # the user's own setting, applied by glibc at start-up
            continue
        if libc.mallopt(param, value) == 1:  # 1: success
            os.environ[name] = str(value)
            applied.append(name)
    return applied


def _glibc():
    """This process's C library when it is glibc (it has gnu_get_libc_version), else None."""
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded: the C library's among them
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc
