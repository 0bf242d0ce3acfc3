"""Where and in what precision the model runs: the one parser of dtype names and the one resolver of device names
used by training, evaluation, export and LAMMPS."""

import re

import torch

from .errors import MLANetInputError

DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEVICE_NAMES = "cpu, cuda, cuda:N or auto"
_DEVICE = re.compile(r"cpu|auto|cuda(:\d+)?")


def parse_dtype(name: str, where: str = "dtype") -> torch.dtype:
    """'float32' or 'float64' -> the torch dtype; anything else is an MLANetInputError naming `where`."""
    if name not in DTYPES:
        raise MLANetInputError(where, f"unknown dtype {name!r}", f"use {' or '.join(DTYPES)}")
    return DTYPES[name]


def is_device_name(name: str) -> bool:
    """Whether `name` is 'cpu', 'cuda', 'cuda:N' or 'auto' (whether or not this machine has that device)."""
    return isinstance(name, str) and _DEVICE.fullmatch(name) is not None


def check_device_name(name: str, where: str = "device") -> str:
    """`name` if is_device_name(name), else an MLANetInputError naming `where`."""
    if not is_device_name(name):
        raise MLANetInputError(where, f"unknown device {name!r}", f"use {DEVICE_NAMES}")
    return name


def resolve_device(name: str, local_rank: int = 0, where: str = "device") -> torch.device:
    """The torch device of `name`: 'auto' is cuda when available (else cpu), plain 'cuda' (and 'auto' with CUDA) is
    cuda:(local_rank % number of GPUs), so ranks of one node spread over its GPUs; 'cuda:N' and 'cpu' are taken as
    they are. CUDA names without a visible GPU (or 'cuda:N' beyond the GPUs) are an MLANetInputError naming `where`."""
    check_device_name(name, where)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise MLANetInputError(where, f"'{name}' requested but this process sees no CUDA GPU", "use cpu or auto")
    count = torch.cuda.device_count()
    index = local_rank % count if name == "cuda" else int(name.split(":")[1])
    if index >= count:
        raise MLANetInputError(where, f"'{name}' requested but this process sees {count} CUDA GPU(s)",
                               f"use cuda:0 to cuda:{count - 1}, cuda or auto")
    return torch.device("cuda", index)
