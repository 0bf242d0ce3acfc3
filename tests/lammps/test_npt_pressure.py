"""The pressure the barostat of lammps_inputs/water_npt.in acts on, at its first step, against the ASE calculator in
float64: LAMMPS' thermo pressure equals the virial pressure from the ASE stress plus the kinetic term of LAMMPS'
temperature (bar). Together with the ASE virial tests this covers the pressure path of the NPT input."""

import ase.io
import numpy as np
import pytest

from mlanet_lammps.calculator import MLANetCalculator
from tests.conftest import ROOT
from tests.lammps.conftest import NKTV2P_METAL, export_small_water_model, run_lammps, thermo_rows

pytestmark = pytest.mark.lammps

INPUTS = ROOT / "lammps_inputs"
BOLTZ_METAL = 8.617343e-5  # LAMMPS' metal-units Boltzmann constant (eV/K)


def test_npt_input_pressure_matches_ase(tmp_path):
    prefix = export_small_water_model(tmp_path)
    data = INPUTS / "water_192.data"
    (tmp_path / data.name).write_bytes(data.read_bytes())
    run_lammps(tmp_path, (INPUTS / "water_npt.in").read_text(),
               variables={"model": prefix, "equil_steps": 0, "prod_steps": 1})
    first = thermo_rows((tmp_path / "log.lammps").read_text())[0]  # step 0 of the production run
    assert first["Step"] == 0

    atoms = ase.io.read(data, format="lammps-data", atom_style="atomic", units="metal", Z_of_type={1: 8, 2: 1})
    atoms.calc = MLANetCalculator(prefix.with_suffix(".ckpt"))
    volume = atoms.get_volume()
    virial = -np.trace(atoms.get_stress(voigt=False)) / 3.0 * NKTV2P_METAL
    dof = 3 * len(atoms) - 3  # LAMMPS' compute temp: momentum removed
    kinetic = dof * BOLTZ_METAL * first["Temp"] / (3.0 * volume) * NKTV2P_METAL
    assert first["Volume"] == pytest.approx(volume, rel=1e-9)
    assert first["Press"] == pytest.approx(virial + kinetic, rel=1e-9)
