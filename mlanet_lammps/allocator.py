"""glibc allocator settings for large per-step tensors.

The model allocates tensors of tens to hundreds of MB on every call. glibc serves those with mmap and returns them
to the kernel on free, so every call page-faults (and zeroes) them again: measured here, a 1,536-atom water
energy + force call took 452 µs/atom by default and 267 µs/atom with the thresholds below. glibc reads
GLIBC_TUNABLES only at process start, so command-line tools re-execute themselves once with it set.

The price is a heap that only grows: freed tensors stay resident for the next call, and a call whose sizes differ a
little from the last one's (a LAMMPS step with a few more pairs) can leave holes it cannot reuse. For the largest
evaluations (LAMMPS ranks that evaluate in checkpointed chunks) release_free_memory hands the free pages back after
each call, which costs far less than such a call.

TUNABLES is the one copy of the setting: run.sh and the lmp wrapper that cmake/build_lammps.sh writes read it by
running this file (`python3 mlanet_lammps/allocator.py` prints it; it needs no installed package).
"""

import ctypes
import functools
import os
import platform
import sys

TUNABLES = "glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295"


@functools.cache
def _glibc():
    """glibc's C library, None on other systems."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL("libc.so.6")


def reexec_with_tunables() -> None:
    """Re-execute this program with GLIBC_TUNABLES set (glibc Linux only; no-op if already set or if
    MLANET_NO_REEXEC=1)."""
    if "GLIBC_TUNABLES" in os.environ or os.environ.get("MLANET_NO_REEXEC") == "1" or _glibc() is None:
        return
    os.environ["GLIBC_TUNABLES"] = TUNABLES
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable] + sys.orig_argv[1:])


def release_free_memory() -> None:
    """Return the free pages of glibc's heap to the kernel (malloc_trim); nothing elsewhere. The next allocations
    that reuse them page-fault again."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


if __name__ == "__main__":  # the shell scripts' source of the setting
    print(TUNABLES)
