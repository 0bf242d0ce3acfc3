"""DFT-D3 in LAMMPS through the snippet's mlanet_dispersion (pair_style hybrid/overlay mliap ... dispersion/d3)
against an independent implementation, simple-dftd3 (the dftd3 package's ASE calculator), on the bundled water box
in float64: LAMMPS' energy, forces and virial pressure with D3 minus those of MLANet alone equal dftd3's two-body D3
with the same damping, functional and cutoffs (MLANet alone on one rank: its results do not depend on the rank
count). And the snippet's checks of a D3 request."""

import numpy as np
import pytest

from tests.lammps.conftest import NKTV2P_METAL, export_small_water_model, run_lammps, single_point

pytestmark = pytest.mark.lammps

# LAMMPS damping keyword -> the dftd3 ASE calculator's name for the same damping function
DAMPING = {"original": "d3zero", "zerom": "d3zerom", "bj": "d3bj", "bjm": "d3bjm"}
# Tolerance: LAMMPS' D3 converts its atomic-unit tables with Bohr = 0.52917725 Å and Hartree = 27.21140795 eV, ASE
# (which turns dftd3's Hartree/Bohr results into eV and Å) with CODATA's 0.52917721067 Å and 27.211386 eV: a
# C6/r^6 term differs by 8.0e-7 (Hartree) + 6 x 7.4e-8 (Bohr) = 1.25e-6 relative, a C8/r^8 term by 1.4e-6.
UNITS_RTOL = 2e-6


@pytest.fixture(scope="module")
def model_prefix(tmp_path_factory):
    return export_small_water_model(tmp_path_factory.mktemp("d3model"))


def lammps_point(workdir, prefix, atoms, variables=None, nprocs: int = 1) -> dict:
    workdir.mkdir()
    (workdir / "model.lammps.in").write_text(prefix.with_suffix(".lammps.in").read_text())
    return single_point(workdir, atoms, ["O", "H"], nprocs, variables=variables)


@pytest.fixture(scope="module")
def mlanet_alone(model_prefix, water_atoms, tmp_path_factory):
    return lammps_point(tmp_path_factory.mktemp("plain") / "run", model_prefix, water_atoms)


@pytest.mark.parametrize("arguments,nprocs", [
    ("bj pbe 31.75 21.17", 1),  # the snippet header's example: simple-dftd3's cutoffs
    ("original pbe 12.0 10.0", 2),  # zero damping; short cutoffs that cut off 1% of E; D3 across two ranks
])
def test_lammps_d3_matches_dftd3(model_prefix, water_atoms, mlanet_alone, tmp_path, arguments, nprocs):
    DFTD3 = pytest.importorskip("dftd3.ase").DFTD3
    damping, functional, cutoff, cn_cutoff = arguments.split()
    with_d3 = lammps_point(tmp_path / "d3", model_prefix, water_atoms, {"mlanet_dispersion": arguments}, nprocs)
    atoms = water_atoms.copy()
    atoms.calc = DFTD3(damping=DAMPING[damping], params_tweaks={"method": functional, "atm": False},
                       realspace_cutoff={"disp2": float(cutoff), "cn": float(cn_cutoff)})
    energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

    assert with_d3["energy"] - mlanet_alone["energy"] == pytest.approx(energy, rel=UNITS_RTOL)
    np.testing.assert_allclose(with_d3["forces"] - mlanet_alone["forces"], forces, rtol=0,
                               atol=UNITS_RTOL * np.abs(forces).max())
    pressure = -stress[[0, 1, 2, 5, 4, 3]] * NKTV2P_METAL  # LAMMPS order xx yy zz xy xz yz, bar
    np.testing.assert_allclose(with_d3["pressure"] - mlanet_alone["pressure"], pressure, rtol=0,
                               atol=UNITS_RTOL * np.abs(pressure).max())


def test_d3_with_null_types_is_refused(model_prefix, tmp_path):
    """mlanet_elements with NULL cannot name D3's elements: one error naming the fix (not LAMMPS' 'Element null not
    supported' from pair_coeff)."""
    (tmp_path / "model.lammps.in").write_text(model_prefix.with_suffix(".lammps.in").read_text())
    script = ("units metal\natom_style atomic\nregion b block 0 8 0 8 0 8\ncreate_box 2 b\nmass 1 15.999\n"
              "mass 2 1.008\ncreate_atoms 1 single 1 1 1\nvariable mlanet_elements string \"O NULL\"\n"
              "variable mlanet_dispersion string \"bj pbe 12.0 10.0\"\ninclude model.lammps.in\n")
    proc = run_lammps(tmp_path, script, check=False, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "mlanet_elements ('O NULL'), which maps types to NULL" in out and "add 'dispersion/d3 ...' to" in out


@pytest.mark.parametrize("arguments,elements,has_d3,message", [
    ("bj pbe", "O H", True, "it needs the four arguments of pair_style dispersion/d3"),
    ("bj pbe 12.0 10.0 lj/cut 5.0", "O H", True, "other pair styles go into variable mlanet_overlay"),
    ("bj pbe 12.0 10.0", "O H", False, "built without the EXTRA-PAIR package: rebuild it with bash cmake/"),
])
def test_d3_request_is_checked(monkeypatch, arguments, elements, has_d3, message):
    """Wrong mlanet_dispersion arguments, or a LAMMPS without pair_style dispersion/d3 (EXTRA-PAIR off), stop with
    one error naming the fix."""
    lammps = pytest.importorskip("lammps")
    from mlanet_lammps.lammps.errors import MLANetLammpsError
    from mlanet_lammps.lammps.snippet import prepare_dispersion

    class Lammps:
        def __init__(self, ptr):
            self.ptr = ptr

        def has_style(self, category, name):
            return has_d3 or (category, name) != ("pair", "dispersion/d3")

    monkeypatch.setattr(lammps, "lammps", Lammps)
    with pytest.raises(MLANetLammpsError, match=message):
        prepare_dispersion(None, arguments, elements)
