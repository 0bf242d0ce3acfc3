"""Physical symmetries and smoothness of MLANet in float64: rotations, translations, permutations, finite
differences of forces and stress, supercell extensivity, locality and continuity at the cutoff."""

import ase
import numpy as np
import pytest
import torch

from mlanet_lammps.calculator import MLANetCalculator
from tests.conftest import make_model, random_rotation

SPECIES = [1, 6, 8, 14, 29]


@pytest.fixture(scope="module")
def calc():
    return MLANetCalculator(make_model(SPECIES, l_max=2))


def evaluate(calc, atoms):
    atoms = atoms.copy()
    atoms.calc = calc
    out = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
           "energies": atoms.get_potential_energies()}
    if atoms.pbc.all():
        out["stress"] = atoms.get_stress(voigt=False)
    return out


@pytest.mark.parametrize("name", ["si_triclinic", "cu_slab", "ethanol", "water"])
def test_rotation_equivariance(calc, structures, name):
    atoms = structures[name]
    ref = evaluate(calc, atoms)
    rng = np.random.default_rng(1)
    for _ in range(3):
        rot = random_rotation(rng)
        moved = atoms.copy()
        moved.positions = atoms.positions @ rot.T
        moved.cell = atoms.cell[:] @ rot.T
        out = evaluate(calc, moved)
        assert out["energy"] == pytest.approx(ref["energy"], rel=1e-10)
        np.testing.assert_allclose(out["forces"], ref["forces"] @ rot.T, rtol=1e-10,
                                   atol=1e-10 * np.abs(ref["forces"]).max())
        np.testing.assert_allclose(out["energies"], ref["energies"], rtol=1e-10)
        if "stress" in ref:
            np.testing.assert_allclose(out["stress"], rot @ ref["stress"] @ rot.T,
                                       atol=1e-10 * np.abs(ref["stress"]).max())


@pytest.mark.parametrize("name", ["si_triclinic", "ethanol", "water"])
def test_translation_and_permutation_invariance(calc, structures, name):
    atoms = structures[name]
    ref = evaluate(calc, atoms)
    moved = atoms.copy()
    moved.positions += np.array([0.37, -1.3, 2.2])
    out = evaluate(calc, moved)
    assert out["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(out["forces"], ref["forces"], atol=1e-10)
    perm = np.random.default_rng(2).permutation(len(atoms))
    permuted = atoms[perm]
    out = evaluate(calc, permuted)
    assert out["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(out["forces"], ref["forces"][perm], atol=1e-10)
    np.testing.assert_allclose(out["energies"], ref["energies"][perm], atol=1e-10)


@pytest.mark.parametrize("name", ["si_triclinic", "cu_slab", "ethanol", "water"])
def test_forces_match_finite_differences(calc, structures, name):
    atoms = structures[name]
    ref = evaluate(calc, atoms)
    h = 1e-4
    rng = np.random.default_rng(3)

    def energy_shifted(atom, axis, step):
        moved = atoms.copy()
        moved.positions[atom, axis] += step
        return evaluate(calc, moved)["energy"]

    for atom in rng.choice(len(atoms), size=min(4, len(atoms)), replace=False):
        for axis in range(3):
            # fourth-order central difference: the steep ZBL wall makes second-order truncation error ~1e-7 eV/Å
            e = {k: energy_shifted(atom, axis, k * h) for k in (-2, -1, 1, 2)}
            fd = -(8.0 * (e[1] - e[-1]) - (e[2] - e[-2])) / (12.0 * h)
            assert ref["forces"][atom, axis] == pytest.approx(fd, abs=1e-7 + 1e-6 * abs(fd))


@pytest.mark.parametrize("name", ["si_triclinic", "water"])
def test_stress_matches_strain_derivative(calc, structures, name):
    atoms = structures[name]
    ref = evaluate(calc, atoms)
    h = 1e-5
    volume = atoms.get_volume()
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = eps[b, a] = h / 2 if a != b else h
            energies = []
            for sign in (1, -1):
                strained = atoms.copy()
                deform = np.eye(3) + sign * eps
                strained.set_cell(atoms.cell[:] @ deform, scale_atoms=True)
                energies.append(evaluate(calc, strained)["energy"])
            fd = (energies[0] - energies[1]) / (2 * h) / volume
            assert ref["stress"][a, b] == pytest.approx(fd, abs=1e-8 + 1e-6 * abs(fd))


@pytest.mark.parametrize("name,reps", [("si_triclinic", (2, 2, 3)), ("water", (2, 1, 1)), ("cu_slab", (2, 3, 1))])
def test_supercell_extensivity(calc, structures, name, reps):
    atoms = structures[name]
    ref = evaluate(calc, atoms)
    big = evaluate(calc, atoms.repeat(reps))
    n = int(np.prod(reps))
    assert big["energy"] == pytest.approx(n * ref["energy"], rel=1e-11)
    np.testing.assert_allclose(big["forces"], np.tile(ref["forces"], (n, 1)), atol=1e-10)
    np.testing.assert_allclose(big["energies"], np.tile(ref["energies"], n), atol=1e-10)


def test_energies_are_local(water_atoms):
    """Moving one atom changes E_i exactly only within the receptive field: atoms more than num_layers edges
    (of length < r_cut) away from it, and so every atom farther than num_layers x r_cut, keep E_i to 1e-12 eV, while
    its neighbours and some atoms exactly num_layers edges away do change (non-periodic 192-atom water cluster)."""
    from mlanet_lammps.data.batch import frame_to_graph
    from mlanet_lammps.data.io import Frame
    from mlanet_lammps.predict import predict

    model = make_model(SPECIES)
    atoms = water_atoms.copy()
    atoms.pbc = False
    moved_atom = int(np.argmin(atoms.positions.sum(axis=1)))  # a corner atom: many atoms out of its reach

    def graph_and_energies(a):
        g = frame_to_graph(Frame.from_atoms(a), model.cutoff, SPECIES)
        return g, predict(model, g).atom_energy.detach().numpy()

    g0, e0 = graph_and_energies(atoms)
    moved = atoms.copy()
    moved.positions[moved_atom] += [0.06, -0.08, 0.05]
    g1, e1 = graph_and_energies(moved)
    # hop distance from the moved atom in the union of both cutoff graphs
    edges = torch.cat([g0.edge_index, g1.edge_index], dim=1).numpy()
    hop = np.full(len(atoms), np.inf)
    hop[moved_atom] = 0
    for k in range(1, model.num_layers + 2):
        reached = edges[1][np.isin(edges[0], np.flatnonzero(hop == k - 1))]
        hop[reached] = np.minimum(hop[reached], k)
    change = np.abs(e1 - e0)
    outside = hop > model.num_layers
    dist = np.minimum(np.linalg.norm(atoms.positions - atoms.positions[moved_atom], axis=1),
                      np.linalg.norm(moved.positions - moved.positions[moved_atom], axis=1))
    far = dist > model.num_layers * model.cutoff
    assert far.sum() >= 20 and np.all(outside[far])
    assert change[outside].max() <= 1e-12
    assert change[hop == 1].min() > 1e-8
    assert change[hop == model.num_layers].max() > 1e-10


def test_energy_and_forces_continuous_across_cutoff(calc):
    cutoff = calc.model.cutoff
    base = [[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.3, 0.9, 0.0]]

    def triple(d):
        return ase.Atoms("OHHC", positions=base + [[d, 0.4, 0.1]])

    # the C atom crosses the cutoff of O (at distance sqrt(d^2 + 0.17))
    d_cross = np.sqrt(cutoff ** 2 - 0.17)
    inside, outside = evaluate(calc, triple(d_cross - 1e-7)), evaluate(calc, triple(d_cross + 1e-7))
    # no jump: the energy change over the 2e-7 Å step is just the work of the (continuous) force on C
    work = -inside["forces"][3, 0] * 2e-7
    assert outside["energy"] - inside["energy"] == pytest.approx(work, abs=1e-13)
    np.testing.assert_allclose(inside["forces"], outside["forces"], atol=2e-8)  # Hessian x 2e-7 Å
    # a dimer switches on smoothly: E(d) - E(far) ~ (r_cut - d)^3 or faster just inside the cutoff
    def dimer(d):
        return evaluate(calc, ase.Atoms("OC", positions=[[0, 0, 0], [d, 0, 0]]))["energy"]

    e_far = dimer(cutoff + 0.5)
    assert abs(dimer(cutoff - 0.8) - e_far) > 1e-5  # the random model does interact there
    assert dimer(cutoff + 1e-9) == e_far
    e1, e2 = dimer(cutoff - 1e-2) - e_far, dimer(cutoff - 2e-2) - e_far
    assert abs(e1) < abs(e2) / 4


def test_float32_close_to_float64(structures):
    model = make_model(SPECIES)
    atoms = structures["water"]
    e64 = evaluate(MLANetCalculator(model), atoms)
    e32 = evaluate(MLANetCalculator(make_model(SPECIES), dtype=torch.float32), atoms)
    assert e32["energy"] == pytest.approx(e64["energy"], rel=1e-5)
    np.testing.assert_allclose(e32["forces"], e64["forces"], atol=1e-4 * np.abs(e64["forces"]).max())
