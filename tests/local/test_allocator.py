"""The runner's large buffers come from the heap, and go back after a job.

The settings are process-wide, so the probe runs in a fresh interpreter;
glibc's own counters (``mallinfo2``) say where a 64 MiB tensor came from.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from soundforge.engines.local import allocator

PROBE = """
import ctypes, json, os
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

def mapped_while_alive() -> int:
    buffer = torch.ones(16 << 20)  # 64 MiB of float32
    mapped = libc.mallinfo2().hblkhd  # bytes in chunks mapped on their own
    del buffer
    return mapped

default = mapped_while_alive()
taken = allocator.large_buffers_for(roformer=False)
tuned = mapped_while_alive()
free = libc.mallinfo2().fordblks  # free bytes kept in the heap
before = resident()
allocator.release_free_memory()
released = before - resident()
roformer_heap = allocator.large_buffers_for(roformer=True)
roformer = mapped_while_alive()
print(json.dumps({"default": default, "taken": taken, "tuned": tuned, "free": free,
                  "released": released, "roformer_heap": roformer_heap,
                  "roformer": roformer}))
"""
BUFFER = 64 << 20


@pytest.mark.skipif(allocator.glibc() is None, reason="glibc's allocator only")
def test_large_buffers_come_from_the_heap_for_demucs_and_go_back_after_the_job() -> None:
    # One fresh interpreter: the setting is process-wide.
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    )
    got = json.loads(done.stdout.splitlines()[-1])
    # By default a large tensor gets pages of its own (without this baseline
    # the rest would prove nothing) …
    assert got["default"] >= BUFFER
    # … with the setting it comes from the heap …
    assert got["taken"] is True
    assert got["tuned"] < BUFFER
    # … and, freed, stays there for the next layer …
    assert got["free"] >= BUFFER
    # … until the job ends and its pages go back to the system.
    assert got["released"] >= BUFFER * 0.9
    # A RoFormer job after it gets glibc's own behaviour back: pages of their own.
    assert got["roformer_heap"] is False
    assert got["roformer"] >= BUFFER


def test_other_c_libraries_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert allocator.glibc() is None
    assert allocator.keep_large_buffers() is False
    assert allocator.large_buffers_for(roformer=False) is False
    allocator.default_large_buffers()  # nothing to call, and no error
    allocator.release_free_memory()
