"""Detecting a too-thin ghost shell (comm_modify cutoff too small) from a rank's pair list alone."""

import re

import numpy as np
import pytest
import vesin

from mlanet_lammps.lammps.ghosts import positions_from_pairs, short_ghost_shell
from tests.lammps.test_module import ghost_augmented


def pairs_of(pos: np.ndarray, cutoff: float):
    """(rij [P,3] Å, pair_i [P], pair_j [P]) of all atoms in `pos` (no periodicity: ghosts are explicit)."""
    i, j, d = vesin.NeighborList(cutoff=cutoff, full_list=True).compute(pos, np.zeros((3, 3)), False,
                                                                          quantities="ijD")
    return d, i.astype(np.int64), j.astype(np.int64)


def wrapped(water_atoms):
    atoms = water_atoms.copy()
    atoms.wrap()
    return atoms


def test_positions_are_rebuilt_from_pair_vectors(water_atoms):
    atoms = wrapped(water_atoms)
    pos, _ = ghost_augmented(atoms, 6.0)
    d, i, j = pairs_of(pos, 4.0)
    rebuilt, frame = positions_from_pairs(d, i, j, len(pos), np.arange(len(atoms)))
    assert (frame == 0).all()  # dense water: one connected part
    np.testing.assert_allclose(rebuilt, pos - pos[0], atol=1e-11)
    # an atom without neighbours is its own part, at its own origin
    rebuilt, frame = positions_from_pairs(d, i, j, len(pos) + 1, np.arange(len(pos) + 1))
    assert frame[-1] == len(pos) and (rebuilt[-1] == 0).all()


@pytest.mark.parametrize("shell, short", [(11.0, False), (9.0, False), (7.0, True), (6.0, True)])
def test_thin_ghost_shell_is_reported(water_atoms, shell, short):
    """Two layers of r_cut 5 Å need 10 Å of ghosts; LAMMPS' default comm cutoff (r_cut + skin) gives 6-7."""
    atoms = wrapped(water_atoms)
    pos, _ = ghost_augmented(atoms, shell)
    problem = short_ghost_shell(*pairs_of(pos, 5.0), len(atoms), len(pos), 2, 5.0, 11.0)
    assert (problem is not None) == short
    if short:
        assert problem.startswith("comm_modify cutoff too small") and "set comm_modify cutoff 11 " in problem
        assert float(re.search(r"reach at most ([\d.]+) Å", problem).group(1)) == pytest.approx(shell, abs=0.5)


def test_vacuum_side_is_not_a_thin_shell(water_atoms):
    """A slab: periodic ghosts in x and y, none beyond its surfaces in z. Only a real shortfall is reported."""
    atoms = wrapped(water_atoms)
    atoms.cell[2, 2] += 30.0  # vacuum gap wider than the ghost shell
    for shell, short in ((11.0, False), (6.0, True)):
        pos, _ = ghost_augmented(atoms, shell)
        assert (short_ghost_shell(*pairs_of(pos, 5.0), len(atoms), len(pos), 2, 5.0, 11.0) is not None) == short


def test_structure_ending_on_one_side_is_not_a_thin_shell(water_atoms):
    """Ghosts that stop 3 Å above the rank's atoms because the structure ends there (an adsorbate over a
    neighbouring rank's part of a slab), with deep ghosts on the other sides, are not reported."""
    atoms = wrapped(water_atoms)
    pos, _ = ghost_augmented(atoms, 11.0)
    height = atoms.cell[2, 2]
    keep = np.concatenate([np.arange(len(atoms)), len(atoms) + np.flatnonzero(pos[len(atoms):, 2] < height + 3.0)])
    pos = pos[keep]
    assert short_ghost_shell(*pairs_of(pos, 5.0), len(atoms), len(pos), 2, 5.0, 11.0) is None
