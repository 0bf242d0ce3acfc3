"""The per-rank LAMMPS module on an explicit ghost-augmented graph (no LAMMPS needed): local energies and
reverse-communicated forces equal the periodic ASE results, with and without ghost-depth pruning."""

import numpy as np
import pytest
import torch
import vesin

from mlanet_lammps.calculator import MLANetCalculator
from mlanet_lammps.lammps.module import LammpsMLANet, hop_distance
from tests.conftest import make_model


def ghost_augmented(atoms, shell: float):
    """Local atoms followed by periodic images within `shell` Å of the (orthorhombic) cell, like a LAMMPS rank."""
    lengths = np.diag(atoms.cell[:])
    pos, owner = [atoms.positions], [np.arange(len(atoms))]
    for shift in np.ndindex(3, 3, 3):
        s = np.array(shift) - 1
        if not s.any():
            continue
        image = atoms.positions + s * lengths
        inside = np.all((image > -shell) & (image < lengths + shell), axis=1)
        pos.append(image[inside])
        owner.append(np.arange(len(atoms))[inside])
    return np.concatenate(pos), np.concatenate(owner)


def rank_pairs(atoms, cutoff: float, shell: float):
    """(rij [P,3] Å, pair_i [P], pair_j [P], species [ntotal], owner [ntotal]) of `atoms` seen as one LAMMPS rank
    whose ghosts reach `shell` Å beyond the cell."""
    pos, owner = ghost_augmented(atoms, shell)
    nl = vesin.NeighborList(cutoff=cutoff, full_list=True)
    i, j, d = nl.compute(pos, np.zeros((3, 3)), False, quantities="ijD")
    species = torch.tensor(np.where(atoms.numbers[owner] == 1, 0, 1))
    return torch.tensor(d), torch.tensor(i, dtype=torch.long), torch.tensor(j, dtype=torch.long), species, owner


@pytest.mark.parametrize("prune", [True, False])
def test_module_matches_periodic_calculator(water_atoms, prune):
    cutoff, layers = 3.5, 2
    model = make_model([1, 8], cutoff=cutoff, num_layers=layers, channels=6, l_max=1)
    atoms = water_atoms.copy()
    atoms.wrap()  # images are built from positions inside the cell
    rij, i, j, species, owner = rank_pairs(atoms, cutoff, layers * cutoff + 0.5)
    module = LammpsMLANet(model)
    energy, fij, evaluated = module(rij, i, j, species, len(atoms), prune)
    i, j = i.numpy(), j.numpy()
    # LAMMPS: f[i] += fij, f[j] -= fij, then ghost forces are added to their owners
    forces = np.zeros((len(owner), 3))
    np.add.at(forces, i, fij.detach().numpy())
    np.add.at(forces, j, -fij.detach().numpy())
    folded = np.zeros((len(atoms), 3))
    np.add.at(folded, owner, forces)
    atoms.calc = MLANetCalculator(model)
    np.testing.assert_allclose(energy.detach().numpy()[:len(atoms)], atoms.get_potential_energies(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(folded, atoms.get_forces(), rtol=1e-10, atol=1e-12)
    assert evaluated <= layers * len(i)
    if prune:
        assert evaluated < 0.7 * layers * len(i)  # most ghost pairs are skipped


def test_hop_distance_on_a_chain():
    # chain 0-1-2-3-4 (local atoms: 0), directed pairs both ways
    i = torch.tensor([0, 1, 1, 2, 2, 3, 3, 4])
    j = torch.tensor([1, 0, 2, 1, 3, 2, 4, 3])
    assert hop_distance(i, j, torch.arange(5) < 1, 3).tolist() == [0, 1, 2, 3, 3]


@pytest.mark.parametrize("chunks", [2, 7])
def test_chunked_evaluation_is_exact(water_atoms, chunks):
    """Splitting the local atoms into chunks (bounded memory) gives the unchunked energies and fij."""
    cutoff, layers = 3.5, 2
    model = make_model([1, 8], cutoff=cutoff, num_layers=layers, channels=6, l_max=1)
    atoms = water_atoms.copy()
    atoms.wrap()
    rij, i, j, species, _ = rank_pairs(atoms, cutoff, layers * cutoff + 0.5)
    module = LammpsMLANet(model)
    energy, fij, evaluated = module(rij, i, j, species, len(atoms), True, 0)
    energy_c, fij_c, evaluated_c = module(rij, i, j, species, len(atoms), True, -(-evaluated // chunks))
    np.testing.assert_allclose(energy_c.detach()[:len(atoms)], energy.detach()[:len(atoms)], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(fij_c.detach(), fij.detach(), rtol=1e-10, atol=1e-13)
    # each chunk re-evaluates the first layer on its halo; the second layer only on its own atoms
    assert evaluated < evaluated_c < 2 * chunks * evaluated


def test_chunking_atoms_without_pairs():
    """Local atoms with no neighbours at all (a stretched dimer) keep their energies when chunking is asked for."""
    model = make_model([1, 8], cutoff=3.5, num_layers=2, channels=6, l_max=1)
    module = LammpsMLANet(model)
    rij, none = torch.zeros((0, 3), dtype=torch.float64), torch.zeros(0, dtype=torch.long)
    species = torch.tensor([0, 1])
    whole, _, _ = module(rij, none, none, species, 2, True, 0)
    chunked, _, evaluated = module(rij, none, none, species, 2, True, 1)
    assert evaluated == 0
    torch.testing.assert_close(chunked, whole, rtol=0, atol=0)
    assert whole.abs().sum() > 0  # the per-species reference energies
