"""The runner's large buffers come from the heap, and go back after a job.

The settings are process-wide, so each case runs in a fresh interpreter;
glibc's own counters (``mallinfo2``) say where a 64 MiB tensor came from.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from soundforge.engines.local import allocator

PROBE = """
import ctypes, json, os, sys
import torch
from soundforge.engines.local import allocator

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

def resident() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
taken = allocator.keep_large_buffers() if sys.argv[1] == "tuned" else None
buffer = torch.ones(16 << 20)  # 64 MiB of float32
mapped = libc.mallinfo2().hblkhd  # bytes in chunks mapped on their own
del buffer
free = libc.mallinfo2().fordblks  # free bytes kept in the heap
before = resident()
allocator.release_free_memory()
print(json.dumps({"taken": taken, "mapped": mapped, "free": free,
                  "released": before - resident()}))
"""
BUFFER = 64 << 20

needs_glibc = pytest.mark.skipif(allocator.glibc() is None, reason="glibc's allocator only")


def probe(mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.splitlines()[-1])


@needs_glibc
def test_by_default_a_large_tensor_gets_pages_of_its_own() -> None:
    # The baseline the setting changes: without it the probe would prove nothing.
    assert probe("default")["mapped"] >= BUFFER


@needs_glibc
def test_kept_on_the_heap_and_handed_back_after_the_job() -> None:
    got = probe("tuned")
    assert got["taken"] is True
    assert got["mapped"] < BUFFER
    # Freed, the buffer stays in the heap for the next layer …
    assert got["free"] >= BUFFER
    # … until the job ends and its pages go back to the system.
    assert got["released"] >= BUFFER * 0.9


def test_other_c_libraries_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert allocator.glibc() is None
    assert allocator.keep_large_buffers() is False
    allocator.release_free_memory()  # nothing to call, and no error
