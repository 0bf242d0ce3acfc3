"""Data-parallel training over the processes that torchrun starts: which process this is, the process group, the
few collectives the loop needs, and how each step's global batch is split over the processes.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and MASTER_ADDR/MASTER_PORT, its usual env:// rendezvous, on one
node or several); a plain `mlanet-train` sees none of them and is rank 0 of 1, with no process group.
"""

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, List

import torch
import torch.distributed as dist

from ..errors import MLANetInputError


@dataclass(frozen=True)
class Ranks:
    """This process's place among `size` training processes (rank 0 is the main one, the only one that writes) and
    the collectives of the loop; with size 1 each is the identity and nothing is communicated."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # the rank on this node: picks the GPU

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of `tensor` over the processes (a new tensor, the same on every process)."""
        if self.size == 1:
            return tensor
        total = tensor.detach().clone()
        dist.all_reduce(total)
        return total

    def gather(self, value: Any) -> List[Any]:
        """The `value` of every process (picklable), in rank order."""
        if self.size == 1:
            return [value]
        out: List[Any] = [None] * self.size
        dist.all_gather_object(out, value)
        return out

    def from_main(self, value: Any) -> Any:
        """Rank 0's `value` on every process: decisions that read a clock (time budget) are taken there alone."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


SINGLE = Ranks()  # the one process of a run without torchrun


def env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise MLANetInputError(f"environment variable {name}", f"{text!r} is not an integer",
                               "start data-parallel training with torchrun, which sets it") from None


def ranks_from_env() -> Ranks:
    """This process's Ranks from torchrun's RANK, WORLD_SIZE and LOCAL_RANK (absent: rank 0 of 1)."""
    ranks = Ranks(env_int("RANK", 0), env_int("WORLD_SIZE", 1), env_int("LOCAL_RANK", 0))
    if not (ranks.size >= 1 and 0 <= ranks.rank < ranks.size and ranks.local_rank >= 0):
        raise MLANetInputError("environment", f"RANK={ranks.rank}, WORLD_SIZE={ranks.size}, LOCAL_RANK="
                               f"{ranks.local_rank} do not describe a process of the run",
                               "start data-parallel training with torchrun (or unset these variables)")
    return ranks


@contextmanager
def process_group(ranks: Ranks, device: torch.device) -> Iterator[None]:
    """The process group for `ranks` (size > 1) while the block runs: NCCL for CUDA devices, gloo on CPUs, joined by
    torchrun's env:// rendezvous; destroyed when the block ends."""
    if ranks.size == 1:
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=ranks.rank, world_size=ranks.size)
    try:
        yield
    finally:
        dist.destroy_process_group()


class GlobalBatches:
    """This process's structures of each step, as a batch_sampler of torch's DataLoader.

    An epoch's global batches are consecutive `batch_size` slices of the structures 0..n-1, in a random order drawn
    from `seed` and the epoch. Each global batch is split over the processes
    the way torch's DistributedSampler splits a data set: rank r takes items r, r + size, r + 2 size, ... With
    several processes, a last global batch with fewer structures than processes is left out of that epoch (each
    process needs at least one structure per step); batch_size >= size keeps every other batch whole.
    """

    def __init__(self, n: int, batch_size: int, ranks: Ranks, seed: int):
        self.n, self.batch_size, self.ranks, self.seed = n, batch_size, ranks, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_batches(self) -> List[List[int]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=gen).tolist()
        batches = [order[i:i + self.batch_size] for i in range(0, self.n, self.batch_size)]
        return [b for b in batches if len(b) >= self.ranks.size]

    def __iter__(self) -> Iterator[List[int]]:
        for batch in self.global_batches():
            yield batch[self.ranks.rank::self.ranks.size]

    def __len__(self) -> int:
        return len(self.global_batches())


def shard(n: int, batch_size: int, ranks: Ranks) -> List[List[int]]:
    """This process's share of the structures 0..n-1 (r, r + size, ...; none where n < size), in batches of at most
    `batch_size` (a batch_sampler of torch's DataLoader, for evaluating every structure once over the processes)."""
    mine = list(range(ranks.rank, n, ranks.size))
    return [mine[i:i + batch_size] for i in range(0, len(mine), batch_size)]
