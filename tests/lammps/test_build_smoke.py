"""Smoke test of the LAMMPS build made by cmake/build_lammps.sh.

Checks that the venv's ``lmp``
  * runs without LD_LIBRARY_PATH and without an activated venv,
  * embeds a Python interpreter that sees the venv's site-packages,
  * runs ``pair_style mliap unified`` with a pickled pure-Python
    Lennard-Jones model and reproduces ``pair_style lj/cut`` energies,
    forces and pressure, for ghostneigh 0 and 1, on 1 and 2 MPI ranks.
"""

import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.lammps.conftest import lammps_is_serial

pytestmark = pytest.mark.lammps

VENV_BIN = Path(sys.prefix) / "bin"
LMP = VENV_BIN / "lmp"
RTOL = 1e-10

if not LMP.exists():
    pytest.skip(
        f"LAMMPS not built into this venv ({LMP} missing): "
        "run `bash cmake/build_lammps.sh --venv <venv>`",
        allow_module_level=True,
    )

# A minimal ML-IAP "unified" model: Lennard-Jones written against the data API.
#   data.rij    (npairs, 3) float64, r_j - r_i
#   data.pair_i, data.pair_j (npairs,) int atom indices (local or ghost)
#   data.nlocal number of owned atoms; pairs with pair_i >= nlocal only exist
#               for ghostneigh=1 and must not contribute (else double counting)
#   data.update_pair_energy(eij): energy = sum_{i<nlocal} 0.5*eij
#   data.update_pair_forces(fij): f[i] += fij, f[j] -= fij, i.e. fij = dE/d(rij)
LJ_MODULE = '''
import numpy as np
from lammps.mliap.mliap_unified_abc import MLIAPUnified


class LJUnified(MLIAPUnified):
    def __init__(self, element_types, epsilon=1.0, sigma=1.0, rcut=2.5):
        # rcutfac is HALF the pair cutoff: cut = 2 * radelem(=1) * rcutfac
        super().__init__(None, element_types, 1, 3, 0.5 * rcut)
        self.epsilon = epsilon
        self.sigma = sigma

    def compute_gradients(self, data):
        pass

    def compute_descriptors(self, data):
        pass

    def compute_forces(self, data):
        rij = np.asarray(data.rij, dtype=np.float64)
        if data.npairs == 0:
            data.energy = 0.0
            return
        r2inv = 1.0 / np.sum(rij * rij, axis=1)
        r6inv = r2inv ** 3
        s6 = self.sigma ** 6
        eij = 4.0 * self.epsilon * s6 * r6inv * (s6 * r6inv - 1.0)
        # d eij / d rij = (dE/dr / r) * rij; each pair is listed twice -> 0.5
        dedr_r = (24.0 * self.epsilon * s6 * r6inv - 48.0 * self.epsilon * s6 * s6 * r6inv * r6inv) * r2inv
        fij = 0.5 * dedr_r[:, None] * rij
        ghost_i = np.asarray(data.pair_i) >= data.nlocal
        fij[ghost_i] = 0.0
        data.update_pair_energy(np.ascontiguousarray(eij))
        data.update_pair_forces(np.ascontiguousarray(fij))
'''

INPUT = """
units           lj
atom_style      atomic
newton          on
lattice         fcc 0.8442
region          box block 0 4 0 4 0 4
create_box      1 box
create_atoms    1 box
mass            1 1.0
displace_atoms  all random 0.05 0.05 0.05 4711
{pair}
neighbor        0.3 bin
thermo_style    custom step pe press
run             0
print           "MLANET_PE $(pe:%.17g) MLANET_PRESS $(press:%.17g) MLANET_NATOMS $(atoms)"
write_dump      all custom forces.dump id fx fy fz modify sort id format float %.17g
"""

PAIRS = {
    "lj": "pair_style lj/cut 2.5\npair_coeff * * 1.0 1.0 2.5",
    "mliap0": "pair_style mliap unified lj.pkl 0\npair_coeff * * Ar",
    "mliap1": "pair_style mliap unified lj.pkl 1\npair_coeff * * Ar",
}


def clean_env(workdir):
    """Environment of a plain shell: no activated venv, no LD_LIBRARY_PATH."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_LIBRARY_PATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
        if Path(p).resolve() != VENV_BIN.resolve())
    env["PYTHONPATH"] = str(workdir)  # the pickled model's module
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_lmp(workdir, name, pair, nprocs=1):
    subdir = workdir / f"{name}_np{nprocs}"
    subdir.mkdir()
    shutil.copy(workdir / "lj.pkl", subdir / "lj.pkl")
    (subdir / "in.lmp").write_text(INPUT.format(pair=pair))
    cmd = [str(LMP), "-nocite", "-log", "log.lammps", "-in", "in.lmp"]
    if nprocs > 1:
        if lammps_is_serial():
            pytest.skip(f"{LMP} is a serial build (MPI STUBS): {nprocs}-rank runs need BUILD_MPI=ON")
        mpirun = shutil.which("mpirun") or shutil.which("mpiexec")
        if mpirun is None:
            pytest.skip("no mpirun on PATH")
        cmd = [mpirun, "-np", str(nprocs)] + cmd
    proc = subprocess.run(cmd, cwd=subdir, env=clean_env(workdir),
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-4000:]}"
    m = re.search(r"MLANET_PE (\S+) MLANET_PRESS (\S+) MLANET_NATOMS (\d+)", out)
    assert m, out[-4000:]
    lines = (subdir / "forces.dump").read_text().splitlines()
    start = lines.index("ITEM: ATOMS id fx fy fz") + 1
    f = np.array([[float(x) for x in ln.split()] for ln in lines[start:]])
    assert f.shape == (int(m.group(3)), 4)
    return float(m.group(1)), float(m.group(2)), f[np.argsort(f[:, 0])][:, 1:]


_RESULTS = {}


def cached_run(workdir, name, nprocs):
    key = (str(workdir), name, nprocs)
    if key not in _RESULTS:
        _RESULTS[key] = run_lmp(workdir, name, PAIRS[name], nprocs)
    return _RESULTS[key]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    pytest.importorskip("lammps.mliap.mliap_unified_abc",
                        reason="lammps Python module not installed in this venv")
    wd = tmp_path_factory.mktemp("lmp_smoke")
    (wd / "ljmodel.py").write_text(LJ_MODULE)
    sys.path.insert(0, str(wd))
    try:
        import ljmodel  # noqa: E402
        with open(wd / "lj.pkl", "wb") as fh:
            pickle.dump(ljmodel.LJUnified(["Ar"]), fh)
    finally:
        sys.path.remove(str(wd))
        sys.modules.pop("ljmodel", None)
    return wd


@pytest.fixture(scope="module")
def reference(workdir):
    return cached_run(workdir, "lj", 1)


def test_lmp_help_lists_mliap_without_ld_library_path(tmp_path):
    proc = subprocess.run([str(LMP), "-h"], cwd=tmp_path, env=clean_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    pkgs = proc.stdout.split("Installed packages:")[1].split("List of")[0]
    assert "ML-IAP" in pkgs and "PYTHON" in pkgs
    assert re.search(r"\bmliap\b", proc.stdout)


def test_embedded_python_sees_venv(tmp_path):
    mods = "numpy" + (", torch" if _venv_has("torch") else "")
    (tmp_path / "in.py").write_text(
        f'python source here "import sys, {mods}; '
        f"print('MLANET_PY', sys.prefix, numpy.__version__)\"\n")
    proc = subprocess.run([str(LMP), "-nocite", "-log", "none", "-in", "in.py"],
                          cwd=tmp_path, env=clean_env(tmp_path),
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    m = re.search(r"MLANET_PY (\S+)", out)
    assert m and Path(m.group(1)).resolve() == Path(sys.prefix).resolve(), out


def _venv_has(mod):
    import importlib.util
    return importlib.util.find_spec(mod) is not None


@pytest.mark.parametrize("ghost", [0, 1])
def test_mliap_unified_lj_matches_lj_cut(workdir, reference, ghost):
    pe_ref, p_ref, f_ref = reference
    pe, p, f = cached_run(workdir, f"mliap{ghost}", 1)
    assert np.abs(f_ref).max() > 1e-3  # displaced lattice: non-trivial forces
    np.testing.assert_allclose(pe, pe_ref, rtol=RTOL)
    np.testing.assert_allclose(f, f_ref, rtol=0, atol=RTOL * np.abs(f_ref).max())
    np.testing.assert_allclose(p, p_ref, rtol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("ghost", [0, 1])
def test_mliap_unified_two_ranks(workdir, reference, ghost):
    pe_ref, p_ref, f_ref = reference
    pe1, p1, f1 = cached_run(workdir, f"mliap{ghost}", 1)
    pe2, p2, f2 = cached_run(workdir, f"mliap{ghost}", 2)
    np.testing.assert_allclose(pe2, pe1, rtol=RTOL)
    np.testing.assert_allclose(pe2, pe_ref, rtol=RTOL)
    np.testing.assert_allclose(f2, f1, rtol=0, atol=RTOL * np.abs(f_ref).max())
    np.testing.assert_allclose(f2, f_ref, rtol=0, atol=RTOL * np.abs(f_ref).max())
    np.testing.assert_allclose(p2, p_ref, rtol=1e-9)
