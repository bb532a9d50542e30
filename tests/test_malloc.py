"""glibc's malloc keeps freed memory for reuse (crossgen.malloc): checked with glibc's own
accounting (mallinfo2: hblks counts the blocks served by mmap) in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")

# In a fresh process: optionally keep_freed_memory(), then malloc 8 MiB and report whether it
# was served by mmap, and what the process's environment now says.
PROBE = """
import ctypes, json, os, sys
from crossgen.malloc import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "call" else []
again = keep_freed_memory() if sys.argv[1] == "call" else []
libc = ctypes.CDLL(None)
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
before = libc.mallinfo2().hblks
block = libc.malloc(8 << 20)
mmapped = libc.mallinfo2().hblks - before
libc.free(block)
env = {k: os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
print(json.dumps({"applied": applied, "again": again, "mmapped": mmapped, "env": env}))
"""


def _probe(mode: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def _has_mallinfo2() -> bool:
    import ctypes

    return hasattr(ctypes.CDLL(None), "mallinfo2")


needs_mallinfo2 = pytest.mark.skipif(not _has_mallinfo2(), reason="glibc < 2.33 has no mallinfo2")


@needs_mallinfo2
def test_large_blocks_come_from_the_heap_once_set():
    default = _probe("none")
    assert default["mmapped"] == 1  # glibc's default: 8 MiB is far above the 128 KiB threshold
    assert default["env"] == {"MALLOC_MMAP_THRESHOLD_": None, "MALLOC_TRIM_THRESHOLD_": None}

    tuned = _probe("call")
    assert tuned["mmapped"] == 0
    assert tuned["applied"] == ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"]
    assert tuned["again"] == []  # once per process
    # children started from here inherit the setting through glibc's own variables
    assert tuned["env"] == {"MALLOC_MMAP_THRESHOLD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20)}


@needs_mallinfo2
def test_the_users_own_setting_wins():
    mine = _probe("call", MALLOC_MMAP_THRESHOLD_="1048576")
    assert mine["applied"] == ["MALLOC_TRIM_THRESHOLD_"]
    assert mine["env"]["MALLOC_MMAP_THRESHOLD_"] == "1048576"
    assert mine["mmapped"] == 1  # 8 MiB is above the user's 1 MiB: still mmapped


@needs_mallinfo2
def test_a_child_of_the_cli_inherits_the_setting():
    """The crossgen CLI applies it when it starts (main); a process it spawns (workers, the theory
    figures) gets it through the environment."""
    code = (
        "import crossgen.cli, subprocess, sys;"
        "crossgen.cli.main(['--version']);"
        "print(subprocess.run([sys.executable, '-c', sys.argv[1], 'none'], capture_output=True, text=True).stdout)"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", code, PROBE], env=clean, capture_output=True, text=True, check=True)
    child = json.loads(out.stdout.strip().splitlines()[-1])  # after "crossgen <version>"
    assert child["mmapped"] == 0
