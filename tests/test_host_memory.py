"""`keep_freed_host_memory`: a large block freed and allocated again on a worker thread (as XLA's CPU
runtime does with each call's temporaries) reuses its pages instead of faulting in fresh ones. Each
case runs in its own process: the settings must precede the threads."""

import os
import platform
import subprocess
import sys

import pytest

# On a new thread: allocate 256 MiB and write it, free it, twice; print the minor page faults of the
# second round, counted in 4 KiB pages.
ALLOCATE_TWICE = """
import ctypes, resource, sys, threading
from mer_jax.host_memory import keep_freed_host_memory
if sys.argv[1] == "kept":
    assert keep_freed_host_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
# Transparent huge pages (/sys/kernel/mm/transparent_hugepage/enabled "always", or "madvise" for a region
# that asks) fault 2 MiB at a time and would divide the count by up to 512: this process takes 4 KiB pages
# whatever the system's setting (PR_SET_THP_DISABLE = 41, Linux >= 3.15).
assert libc.prctl(41, 1, 0, 0, 0) == 0
size, faults = 256 * 2**20, []
def allocate_and_write():
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
def worker():
    allocate_and_write()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    allocate_and_write()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
thread = threading.Thread(target=worker)
thread.start()
thread.join()
print(faults[0])
"""
PAGES = 256 * 2**20 // 4096


def second_round_page_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", ALLOCATE_TWICE, mode], env=dict(os.environ), capture_output=True,
                         text=True, timeout=120, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_kept_memory_reuses_the_pages_of_a_freed_block():
    assert second_round_page_faults("default") >= PAGES  # glibc maps the block afresh, every page faults
    assert second_round_page_faults("kept") < PAGES // 100  # the same pages, reused


def test_nothing_changes_where_the_settings_do_not_apply(monkeypatch):
    from mer_jax import host_memory

    monkeypatch.setattr(host_memory.sys, "platform", "darwin")
    assert host_memory.keep_freed_host_memory() is False
