"""The ZBL repulsion prior: its values against the published formula, smooth switch-off at the switch radius
(covalent-radii sum by default) and a wall that keeps atoms apart. (The data-derived switch radii are tested with
training, tests/train; checkpoints written without the prior, tests/test_checkpoint.py.)"""

import math

import ase
import numpy as np
import pytest
from ase.data import covalent_radii

from mlanet_lammps.calculator import MLANetCalculator
from tests.conftest import make_model

SPECIES = [1, 8, 29]


def zbl_reference(z1: int, z2: int, r: float) -> float:
    """Switched ZBL pair energy in eV written out from Ziegler-Biersack-Littmark (1985), independent of the package."""
    a = 0.46850 / (z1 ** 0.23 + z2 ** 0.23)
    x = r / a
    phi = (0.18175 * math.exp(-3.19980 * x) + 0.50986 * math.exp(-0.94229 * x)
           + 0.28022 * math.exp(-0.40290 * x) + 0.02817 * math.exp(-0.20162 * x))
    s = r / (covalent_radii[z1] + covalent_radii[z2])
    switch = 1.0 - 28.0 * s ** 6 + 48.0 * s ** 7 - 21.0 * s ** 8 if s < 1.0 else 0.0
    return 14.399645 * z1 * z2 / r * phi * switch


def dimer(z1: int, z2: int, r: float) -> ase.Atoms:
    return ase.Atoms(numbers=[z1, z2], positions=[[0.0, 0.0, 0.0], [r * 0.6, r * 0.8, 0.0]])


@pytest.fixture(scope="module")
def calcs():
    """The same random weights with and without the prior."""
    return (MLANetCalculator(make_model(SPECIES, seed=2)),
            MLANetCalculator(make_model(SPECIES, seed=2, repulsion="none")))


def energy(calc, atoms) -> float:
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy()


@pytest.mark.parametrize("z1,z2", [(1, 1), (1, 8), (8, 8), (8, 29)])
@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.8, 0.95, 1.2])
def test_prior_is_the_switched_zbl_pair_energy(calcs, z1, z2, fraction):
    with_prior, without = calcs
    r = fraction * (covalent_radii[z1] + covalent_radii[z2])
    added = energy(with_prior, dimer(z1, z2, r)) - energy(without, dimer(z1, z2, r))
    assert added == pytest.approx(zbl_reference(z1, z2, r), rel=1e-10, abs=1e-12)


def test_per_atom_split_is_symmetric_and_sums_to_the_pair(calcs):
    with_prior, without = calcs
    atoms = dimer(1, 8, 0.6)
    parts = []
    for calc in calcs:
        atoms.calc = calc
        parts.append(atoms.get_potential_energies())
        atoms.calc = None
    added = parts[0] - parts[1]
    np.testing.assert_allclose(added, [zbl_reference(1, 8, 0.6) / 2] * 2, rtol=1e-10)


@pytest.mark.parametrize("z1,z2", [(1, 1), (1, 8)])
def test_switch_off_is_smooth(calcs, z1, z2):
    """Energy, force and force derivative are continuous across r_sw, and the prior is exactly zero beyond it."""
    with_prior, without = calcs
    r_sw = covalent_radii[z1] + covalent_radii[z2]
    h = 1e-4
    prior = [energy(with_prior, dimer(z1, z2, r)) - energy(without, dimer(z1, z2, r))
             for r in (r_sw - 2 * h, r_sw - h, r_sw, r_sw + h, r_sw + 2 * h)]
    assert prior[3] == 0.0 and prior[4] == 0.0
    # f, f', f'' vanish at r_sw, so the prior grows as (r_sw - r)^3: doubling the distance to r_sw gives 8x
    assert prior[1] > 0.0 and prior[0] / prior[1] == pytest.approx(8.0, rel=1e-2)
    # the prior is still visible (and repulsive) well inside: not an empty term
    assert energy(with_prior, dimer(z1, z2, 0.9 * r_sw)) - energy(without, dimer(z1, z2, 0.9 * r_sw)) > 1e-5


def test_wall_keeps_hydrogens_apart(calcs):
    """With the prior, bringing two H atoms from 0.6 to 0.3 Å costs > 10 eV whatever the random network does."""
    with_prior, _ = calcs
    assert energy(with_prior, dimer(1, 1, 0.3)) - energy(with_prior, dimer(1, 1, 0.6)) > 10.0


def test_forces_of_prior_match_finite_differences(calcs):
    with_prior, _ = calcs
    atoms = dimer(1, 8, 0.7)
    atoms.calc = with_prior
    forces = atoms.get_forces()
    h = 1e-5
    for axis in range(3):
        e = {}
        for k in (-1, 1):
            moved = atoms.copy()
            moved.positions[1, axis] += k * h
            e[k] = energy(with_prior, moved)
        assert forces[1, axis] == pytest.approx(-(e[1] - e[-1]) / (2 * h), rel=1e-6, abs=1e-6)


def test_unknown_repulsion_rejected():
    with pytest.raises(ValueError, match="repulsion"):
        make_model(SPECIES, repulsion="lj")


def test_switch_radii_follow_the_training_distances():
    """Seen pairs: 0.9 x their shortest training distance, at most 2x the covalent sum; unseen pairs: the covalent
    sum; everything at most the cutoff."""
    from mlanet_lammps.model.repulsion import switch_radii

    inf = float("inf")
    radii = switch_radii([1, 8, 29], 2.5, [[inf, 0.9, 1.5], [0.9, 2.9, inf], [1.5, inf, 2.3]])
    expected = [[0.62, 0.81, 1.35], [0.81, 2.5, 1.98], [1.35, 1.98, 2.07]]  # O-O: 0.9 x 2.9 capped by the 2.5 Å cutoff
    np.testing.assert_allclose(radii, expected, atol=1e-12)
    assert switch_radii([1], 5.0, [[3.0]]) == [[pytest.approx(1.24)]]  # capped at 2 x 0.62 Å
