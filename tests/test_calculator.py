"""MLANetCalculator takes dtype and device by name, as the command-line tools do."""

import numpy as np
import pytest
import torch

from mlanet_lammps.calculator import MLANetCalculator
from mlanet_lammps.errors import MLANetInputError
from tests.conftest import make_model


def test_dtype_and_device_by_name(structures):
    atoms = structures["water"]
    model = make_model([1, 8])
    named = MLANetCalculator(model, dtype="float32", device="auto")
    assert named.dtype == torch.float32
    assert named.device == (torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu"))
    typed = MLANetCalculator(make_model([1, 8]), dtype=torch.float32, device=named.device)
    a, b = atoms.copy(), atoms.copy()
    a.calc, b.calc = named, typed
    assert a.get_potential_energy() == b.get_potential_energy()
    np.testing.assert_array_equal(a.get_forces(), b.get_forces())
    with pytest.raises(MLANetInputError, match=r"MLANetCalculator\(dtype=...\): unknown dtype 'half'"):
        MLANetCalculator(model, dtype="half")
    with pytest.raises(MLANetInputError, match=r"MLANetCalculator\(device=...\): unknown device 'gpu'"):
        MLANetCalculator(model, device="gpu")
