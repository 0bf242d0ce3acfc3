"""What one LAMMPS rank may use on its node: its place among the node's ranks, and how many (pair, layer)
evaluations fit at once in its share of the free memory of its device (CPU RAM or GPU)."""

import functools
import os
import sys
from pathlib import Path
from typing import Optional, Tuple

import torch

# of a rank's share of the free memory that one whole (unchunked) evaluation may fill, by the bytes_per_pair
# estimate; the rest is for what the rank holds besides (LAMMPS' pair data, our copies of it, heap fragmentation).
# A larger evaluation runs in checkpointed chunks, which recompute the forward pass (slower, far less memory).
MEMORY_FRACTION = 0.5
MIN_PAIRS = 50_000  # never chunk finer than this: below it, per-chunk overhead dominates
# On the CPU one huge eager evaluation is slow, not only big: above this many (pair, layer) evaluations a rank that
# evaluates eagerly (MLANET_COMPILE=no) runs in checkpointed chunks whatever its free memory. The compiled evaluator
# has no such cap: evaluated whole, it stays fast as long as it fits (docs/performance.md).
CPU_MAX_PAIRS = 1_200_000
# Edges of one checkpointed chunk on the CPU. Once an evaluation is chunked (and so recomputes its forward pass),
# the chunk size hardly changes the CPU time but sets the memory: small chunks (about 1,000 water atoms) keep a
# rank's peak low and its heap unfragmented. On a GPU chunks are as large as the budget allows (larger kernels).
CPU_CHUNK_EDGES = 50_000


LOCAL_RANK_VARS = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "PMI_LOCAL_RANK")
LOCAL_SIZE_VARS = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "PMI_LOCAL_SIZE")


@functools.cache
def _node_placement() -> Tuple[int, int]:
    """(rank, size) of this process among the MPI ranks on its node.

    From the launcher's environment (mpich/hydra, Open MPI, SLURM), else from mpi4py's shared-memory communicator
    if MPI is already initialised (by LAMMPS or a Python driver), else (0, 1). mpi4py never initialises MPI here,
    and its collective call runs once per process.
    """
    rank = next((int(os.environ[v]) for v in LOCAL_RANK_VARS if v in os.environ), None)
    size = next((int(os.environ[v]) for v in LOCAL_SIZE_VARS if v in os.environ), None)
    if rank is not None and size is not None:
        return rank, size
    try:
        import mpi4py
        if "mpi4py.MPI" not in sys.modules:
            mpi4py.rc.initialize = mpi4py.rc.finalize = False  # do not start MPI in a serial LAMMPS
        from mpi4py import MPI
        if MPI.Is_initialized() and not MPI.Is_finalized():
            comm = MPI.COMM_WORLD.Split_type(MPI.COMM_TYPE_SHARED)
            placement = comm.Get_rank(), comm.Get_size()
            comm.Free()
            return placement
    except (ImportError, RuntimeError, OSError):  # no mpi4py, or mpi4py without a loadable MPI library
        pass
    return rank or 0, size or 1


def local_rank() -> int:
    """Rank of this process among the MPI ranks on the same node."""
    return _node_placement()[0]


def local_size() -> int:
    """Number of MPI ranks on this node."""
    return _node_placement()[1]


def _cgroup_room() -> Optional[int]:
    """Bytes this process's cgroup may still use (the tightest limit on its path; v2, else v1), None if unlimited."""
    room = None
    root = Path("/sys/fs/cgroup")
    try:
        entries = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        entries = []
    for entry in entries:
        _, controllers, path = entry.split(":", 2)
        if controllers == "":  # cgroup v2
            top, names = root, ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):  # cgroup v1
            top, names = root / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        folder = top / path.lstrip("/")
        while True:  # a limit may sit on any ancestor
            limit, usage = folder / names[0], folder / names[1]
            if limit.exists() and usage.exists() and limit.read_text().strip() != "max":
                if int(limit.read_text()) < 2 ** 60:  # v1 writes a huge number for "no limit"
                    free = int(limit.read_text()) - int(usage.read_text())
                    room = free if room is None else min(room, free)
            if folder == top or top not in folder.parents:
                break
            folder = folder.parent
    return room


def free_bytes(device: torch.device) -> int:
    """Free memory of `device` in bytes: the GPU's free memory, or for the CPU the kernel's MemAvailable, lowered to
    what a cgroup memory limit still allows."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    room = _cgroup_room()
    if room is not None:
        free = min(free, room)
    return max(free, 0)


def bytes_per_pair(channels: int, l_max: int, dtype_bytes: int) -> float:
    """Autograd memory of one (pair, layer) evaluation in bytes, an upper estimate.

    Peak-memory growth of energy + force calls on water, float32, per (pair, layer) evaluation: 5.6 KB at 24 channels
    and l_max 1, 6.7 KB at 32 and 1, 7.7 KB at 24 and 2; 10.1 KB at 24 and 1 in float64. This formula gives 5.7,
    6.7, 9.6 and 11.3 KB.
    """
    return dtype_bytes / 4 * (2500 + 33 * channels * (l_max + 1) ** 2)


def ranks_sharing(device: torch.device, round_robin: bool) -> int:
    """Ranks on this node that use `device`: all of them on the CPU or when every rank was pinned to the same GPU
    (--device cuda:N); with the round-robin placement (rank r on GPU r % n_gpus, --device cuda or auto) only those
    placed on this GPU."""
    size = local_size()
    if device.type != "cuda" or not round_robin:
        return size
    return max(1, len(range(device.index or 0, size, torch.cuda.device_count())))


def auto_max_pairs(device: torch.device, per_pair: float, sharing: int, compiled: bool) -> int:
    """(pair, layer) evaluations one rank may run at once: MEMORY_FRACTION of its share of the device's free memory
    (`sharing` ranks use the device, see ranks_sharing) over `per_pair` bytes, at least MIN_PAIRS; for the eager
    evaluator on the CPU (compiled False) at most CPU_MAX_PAIRS."""
    fit = int(free_bytes(device) * MEMORY_FRACTION / max(1, sharing) / per_pair)
    if device.type == "cpu" and not compiled:
        fit = min(fit, CPU_MAX_PAIRS)
    return max(MIN_PAIRS, fit)


def chunk_edges(device: torch.device, max_pairs: int, num_layers: int) -> int:
    """Edges per checkpointed chunk for a rank whose budget is max_pairs (pair, layer) evaluations: the budget's
    share of one layer, at most CPU_CHUNK_EDGES on the CPU, at least 1."""
    edges = max(1, max_pairs // num_layers)
    return min(edges, CPU_CHUNK_EDGES) if device.type == "cpu" else edges
