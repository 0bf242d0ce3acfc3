"""dtype names and device names (mlanet_lammps/devices.py), with and without (simulated) GPUs."""

import pytest
import torch

from mlanet_lammps import devices
from mlanet_lammps.devices import check_device_name, parse_dtype, resolve_device
from mlanet_lammps.errors import MLANetInputError


def test_parse_dtype():
    assert parse_dtype("float32") is torch.float32 and parse_dtype("float64") is torch.float64
    with pytest.raises(MLANetInputError, match=r"^--dtype: unknown dtype 'float16'\. Fix: use float32 or float64$"):
        parse_dtype("float16", "--dtype")


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "CPU", "", None])
def test_unknown_device_names(name):
    with pytest.raises(MLANetInputError, match="unknown device"):
        check_device_name(name)
    with pytest.raises(MLANetInputError, match="unknown device"):
        resolve_device(name)


def test_resolve_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("cpu", local_rank=3) == torch.device("cpu")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(MLANetInputError, match="^training.device: 'cuda.*sees no CUDA GPU.*use cpu or auto$"):
            resolve_device(name, where="training.device")


def test_resolve_with_gpus(monkeypatch):
    """Plain 'cuda' and 'auto' spread ranks round-robin over the GPUs; cuda:N is taken as it is (if it exists)."""
    monkeypatch.setattr(devices.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(devices.torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert [resolve_device("cuda", local_rank=r).index for r in range(5)] == [0, 1, 0, 1, 0]
    assert resolve_device("auto", local_rank=3) == torch.device("cuda", 1)
    assert resolve_device("cuda:1", local_rank=0) == torch.device("cuda", 1)
    with pytest.raises(MLANetInputError, match="sees 2 CUDA GPU"):
        resolve_device("cuda:2")
