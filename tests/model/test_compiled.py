"""torch.compile inference (model/compiled.py) against eager PyTorch, float64: padded edges must change nothing."""

import numpy as np
import pytest

from mlanet_lammps.calculator import MLANetCalculator
from mlanet_lammps.data.batch import frame_to_graph
from mlanet_lammps.data.io import Frame

from ..conftest import make_model


def results(calc, atoms):
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(), atoms.get_potential_energies()


def test_compiled_calculator_matches_eager(small_water):
    model = make_model([1, 8], l_max=1)
    eager = MLANetCalculator(model, script=False)
    compiled = MLANetCalculator(model, compile=True)
    stretched = small_water.copy()
    stretched.set_cell(small_water.cell * 1.04, scale_atoms=True)
    # the second structure has fewer edges than the first, so it runs on the first one's compiled shapes with more
    # padding edges (no second compilation)
    for atoms in (small_water, stretched):
        e0, f0, s0, ea0 = results(eager, atoms)
        e1, f1, s1, ea1 = results(compiled, atoms)
        assert e1 == pytest.approx(e0, rel=1e-12)
        np.testing.assert_allclose(f1, f0, rtol=0, atol=1e-10)
        np.testing.assert_allclose(s1, s0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ea1, ea0, rtol=0, atol=1e-11)
    module = compiled.energy_grad()
    edges = frame_to_graph(Frame.from_atoms(stretched, source="atoms"), model.cutoff, [1, 8]).edge_index.shape[1]
    assert module.capacity >= edges + 50, "the stretched box should run with padding edges"
