"""LAMMPS' default evaluator, MLANet through torch.compile (model/compiled.py), against the eager ASE calculator in
float64: on 2 ranks with the ghost exchange between compiled graphs, through a box that doubles its atom count in
the run (padded sizes grow and compile again), and on 1 rank in checkpointed chunks (the compiled chunk layer). Each
compile costs about a minute here, so the chunked run does not grow its box."""

import ase.io
import numpy as np
import pytest

from mlanet_lammps.calculator import MLANetCalculator
from mlanet_lammps.checkpoint import load_model
from tests.conftest import WATER
from tests.lammps.conftest import export_small_water_model, read_dump, run_lammps, thermo_rows, write_data

pytestmark = pytest.mark.lammps

SCRIPT = """units metal
atom_style atomic
boundary p p p
read_data structure.data
variable mlanet_elements string "H O"
include {prefix}.lammps.in
thermo_style custom step atoms pe
thermo_modify format float %24.17g
dump 1 all custom 1 out.dump id fx fy fz
dump_modify 1 format float %24.17g sort id
run 0
{grow}"""
GROW = """undump 1
replicate 2 1 1
run 0
"""


@pytest.fixture(scope="module")
def water_model(tmp_path_factory):
    prefix = export_small_water_model(tmp_path_factory.mktemp("model"))
    return prefix, MLANetCalculator(load_model(prefix.with_suffix(".ckpt")))


@pytest.mark.parametrize("nprocs, max_pairs, grow", [(2, "0", True), (1, "3000", False)])
def test_compiled_evaluator_matches_ase(water_model, tmp_path, monkeypatch, nprocs, max_pairs, grow):
    prefix, calc = water_model
    monkeypatch.setenv("MLANET_COMPILE", "yes")
    monkeypatch.setenv("MLANET_MAX_PAIRS", max_pairs)
    atoms = ase.io.read(WATER, 0)
    write_data(atoms, tmp_path / "structure.data", ["H", "O"])
    proc = run_lammps(tmp_path, SCRIPT.format(prefix=prefix, grow=GROW if grow else ""), nprocs, timeout=900)
    assert f"compile=yes, max_pairs={max_pairs}" in proc.stdout
    log = (tmp_path / "log.lammps").read_text()
    runs = [thermo_rows(part)[-1] for part in log.split("\nreplicate 2 1 1")]
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    assert runs[0]["Atoms"] == len(atoms) and len(runs) == 1 + grow
    assert runs[0]["PotEng"] == pytest.approx(energy, rel=1e-10)
    if grow:  # the grown box keeps working
        assert runs[1]["Atoms"] == 2 * len(atoms) and runs[1]["PotEng"] == pytest.approx(2 * energy, rel=1e-10)
    forces = atoms.get_forces()
    np.testing.assert_allclose(read_dump(tmp_path / "out.dump")[:, 1:4], forces, rtol=0,
                               atol=1e-9 * np.abs(forces).max())
