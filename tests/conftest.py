"""Shared fixtures: small float64 models and real structures (bundled water and formate frames, built crystals)."""

import os
from pathlib import Path

import ase
import ase.build
import ase.io
import numpy as np
import pytest
import torch

from mlanet_lammps.model import MLANet, ModelConfig

ROOT = Path(__file__).resolve().parents[1]
# LAMMPS runs in the tests evaluate eagerly: compiling costs a minute per run. The compiled evaluator, LAMMPS'
# default, is tested where a test sets MLANET_COMPILE=yes (tests/lammps/test_compiled_lammps.py).
os.environ.setdefault("MLANET_COMPILE", "no")
WATER = ROOT / "examples" / "water" / "water_40frames.extxyz"
FORMATE = ROOT / "examples" / "formate" / "formate_cu_20frames.extxyz"


def make_model(atomic_numbers, seed: int = 0, **kw) -> MLANet:
    """A small random-weight float64 MLANet (non-trivial weights so every path contributes)."""
    torch.manual_seed(seed)
    cfg = dict(cutoff=4.0, channels=8, l_max=2, num_layers=2, embed_dim=8, radial_hidden=16, chem_hidden=16,
               att_channels=4, readout_hidden=16, avg_num_neighbors=10.0)
    cfg.update(kw)
    model = MLANet(ModelConfig(atomic_numbers=list(atomic_numbers), **cfg)).to(torch.float64)
    with torch.no_grad():  # make the (zero-initialised) scale/reference energies non-trivial
        model.energy_scale.scale.fill_(0.7)
        model.energy_scale.reference_energies.copy_(torch.linspace(-1.0, -3.0, len(atomic_numbers)))
    return model.eval()


@pytest.fixture(scope="session")
def water_frames():
    return ase.io.read(WATER, ":")


@pytest.fixture(scope="session")
def water_atoms(water_frames):
    """A 64-molecule periodic water box (Å)."""
    return water_frames[0].copy()


@pytest.fixture(scope="session")
def small_water(water_atoms):
    """24 water atoms kept from the box, in a smaller triclinic periodic cell (short test runs)."""
    atoms = water_atoms[:24].copy()
    atoms.set_cell([[7.0, 0.0, 0.0], [1.2, 7.3, 0.0], [0.8, -0.6, 7.6]], scale_atoms=False)
    atoms.wrap()
    return atoms


@pytest.fixture(scope="session")
def structures(water_atoms):
    """Systems covering the PBC cases: triclinic small cell, slab (mixed pbc), isolated molecule, water."""
    si = ase.build.bulk("Si", "diamond", a=5.43)  # primitive FCC cell, 2 atoms, cell smaller than the cutoff
    si.positions[1] += [0.05, -0.03, 0.02]
    slab = ase.build.fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    slab.pbc = [True, True, False]
    slab.positions[0] += [0.1, 0.05, -0.02]
    molecule = ase.build.molecule("CH3CH2OH")
    return {"si_triclinic": si, "cu_slab": slab, "ethanol": molecule, "water": water_atoms[:48].copy()}


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
