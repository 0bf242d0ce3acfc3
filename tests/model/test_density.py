"""The angular density block: its invariants against the Legendre-polynomial form of the neighbour-density power
spectrum. (Checkpoints written without it: tests/test_checkpoint.py. Rotation, permutation, finite-difference,
cutoff-smoothness and LAMMPS checks run on models that include it: tests/model/test_physics.py, tests/lammps.)"""

import numpy as np
import pytest
import torch
from numpy.polynomial import legendre

from mlanet_lammps.calculator import MLANetCalculator
from mlanet_lammps.data.batch import frame_to_graph
from mlanet_lammps.data.io import Frame
from tests.conftest import make_model

SPECIES = [1, 8]


def energy(model, atoms) -> float:
    atoms = atoms.copy()
    atoms.calc = MLANetCalculator(model)
    return atoms.get_potential_energy()


@pytest.mark.parametrize("l_max", [0, 2, 3])
def test_invariants_are_the_legendre_power_spectrum(water_atoms, l_max):
    """B_i,kk'l = sum_m A_iklm A_ik'lm / sqrt(2l+1) must equal
    (1/avg^2) sum_jj' R_k(j) R_k'(j') sqrt(2l+1) P_l(cos theta_jij') (addition theorem, component-normalised Y)."""
    model = make_model(SPECIES, density_l_max=l_max, density_channels=3)
    density = model.density[0]
    g = frame_to_graph(Frame.from_atoms(water_atoms, source="test"), model.cutoff, SPECIES).to("cpu", torch.float64)
    center, neighbor = g.edge_index
    with torch.no_grad():
        sh = model.spherical_harmonics(g.edge_vec)
        radial, _ = model.radial(torch.linalg.norm(g.edge_vec, dim=-1))
        z = model.embedding(g.species)
        got = density.invariants(sh, radial, z, center, neighbor).numpy()
        r = (density.radial(radial) * density.species(z)[neighbor]).numpy()  # [E, K]
    vec = g.edge_vec.numpy()
    unit = vec / np.linalg.norm(vec, axis=1, keepdims=True)
    for atom in (0, 1, 5):
        edges = np.nonzero(center.numpy() == atom)[0]
        cos = np.clip(unit[edges] @ unit[edges].T, -1.0, 1.0)
        expected = []
        for l in range(l_max + 1):
            p_l = legendre.legval(cos, [0.0] * l + [1.0]) * np.sqrt(2 * l + 1)
            expected += [r[edges, a] @ p_l @ r[edges, b] * density.inv_avg ** 2 for a, b in density.pairs]
        np.testing.assert_allclose(got[atom], expected, rtol=1e-10, atol=1e-12)


def test_density_changes_the_energy(water_atoms):
    """The block is wired in: with the same other weights, removing it changes the energy."""
    with_density, without = make_model(SPECIES, seed=3), make_model(SPECIES, seed=3, density_l_max=-1)
    without.load_state_dict({k: v for k, v in with_density.state_dict().items() if not k.startswith("density.")})
    assert abs(energy(with_density, water_atoms) - energy(without, water_atoms)) > 1e-3


