"""Per-atom uncertainty in LAMMPS (uncertainty_output.py): the same values as the ASE calculator on 1, 2 and 4 MPI
ranks (float64), usable by compute reduce / thermo / dump, flagged frames written past a threshold, clear errors."""

import ase.io
import numpy as np
import pytest

from mlanet_lammps.calculator import MLANetCalculator
from mlanet_lammps.calibration import fit_uncertainty, save_with_uncertainty
from mlanet_lammps.checkpoint import save_checkpoint
from mlanet_lammps.data.batch import frame_to_graph
from mlanet_lammps.data.io import read_frames
from mlanet_lammps.lammps.export import export
from tests.conftest import WATER, make_model
from tests.lammps.conftest import read_dump, run_lammps, thermo_rows, write_data

pytestmark = pytest.mark.lammps

INPUT = """units metal
atom_style atomic
boundary p p p
read_data structure.data
variable mlanet_elements string "H O"
{variables}
include model.lammps.in
compute sigma all property/atom d_mlanet_force_sigma
compute umax all reduce max c_sigma
thermo_style custom step pe c_umax
thermo_modify format float %24.17g
thermo 1
dump 1 all custom 1 out.dump id d_mlanet_energy_sigma d_mlanet_force_sigma
dump_modify 1 format float %24.17g sort id
velocity all create 300 5 loop geom
fix nve all nve
run {steps}
"""


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A random-weight float64 H/O model with an llpr head, exported for LAMMPS, and its ASE calculator."""
    root = tmp_path_factory.mktemp("umodel")
    model = make_model([1, 8], cutoff=4.0)
    frames = read_frames(WATER)
    graphs = [frame_to_graph(f, model.cutoff, [1, 8]) for f in frames[:5]]
    head = fit_uncertainty(model, graphs, frames[5:8], "llpr")
    save_checkpoint(root / "plain.ckpt", model.config, model.state_dict())
    save_with_uncertainty(root / "plain.ckpt", root / "model.ckpt", head)
    export(root / "model.ckpt", root / "model.mliap.pt", dtype="float64", device="cpu")
    export(root / "plain.ckpt", root / "plain.mliap.pt", dtype="float64", device="cpu")
    model.attach_uncertainty(head)
    return root, MLANetCalculator(model)


def setup(root, workdir, name="model"):
    for suffix in (".mliap.pt", ".lammps.in"):
        (workdir / f"model{suffix}").write_bytes((root / f"{name}{suffix}").read_bytes())
    atoms = ase.io.read(WATER, 0)
    write_data(atoms, workdir / "structure.data", ["H", "O"])
    return atoms


@pytest.mark.parametrize("nprocs", [1, 2, 4])
def test_per_atom_uncertainty_matches_ase_on_every_rank_count(calibrated, tmp_path, nprocs):
    root, calc = calibrated
    atoms = setup(root, tmp_path)
    run_lammps(tmp_path, INPUT.format(variables="variable mlanet_uncertainty string yes", steps=0), nprocs)
    dump = read_dump(tmp_path / "out.dump")
    atoms.calc = calc
    u_e, u_f = calc.get_property("energies_uncertainty", atoms), calc.get_property("forces_uncertainty", atoms)
    np.testing.assert_allclose(dump[:, 1], u_e, rtol=1e-10)
    np.testing.assert_allclose(dump[:, 2], u_f, rtol=1e-10)
    thermo = thermo_rows((tmp_path / "log.lammps").read_text())[-1]
    assert thermo["c_umax"] == pytest.approx(u_f.max(), rel=1e-12)


@pytest.mark.parametrize("nprocs", [1, 2])
def test_frames_past_the_threshold_are_written(calibrated, tmp_path, nprocs):
    """A threshold between the smallest and largest per-atom force uncertainty flags every step; with
    mlanet_flag_every 2, steps 0, 2 and 4 of a 5-step run are written, each with the uncertainties LAMMPS dumped."""
    root, calc = calibrated
    atoms = setup(root, tmp_path)
    atoms.calc = calc
    u_f = calc.get_property("forces_uncertainty", atoms)
    variables = (f"variable mlanet_uncertainty string yes\nvariable mlanet_flag_threshold equal "
                 f"{np.median(u_f):.6f}\nvariable mlanet_flag_file string flagged.extxyz\n"
                 "variable mlanet_flag_every equal 2")
    proc = run_lammps(tmp_path, INPUT.format(variables=variables, steps=5), nprocs)
    assert "frames with max >" in proc.stdout
    frames = ase.io.read(tmp_path / "flagged.extxyz", ":")
    assert [f.info["timestep"] for f in frames] == [0, 2, 4]
    last = frames[-1]
    np.testing.assert_array_equal(last.arrays["id"], np.arange(1, len(atoms) + 1))
    assert last.get_chemical_symbols() == atoms.get_chemical_symbols()
    dumps = (tmp_path / "out.dump").read_text().split("ITEM: TIMESTEP")
    (tmp_path / "step4.dump").write_text("ITEM: TIMESTEP" + dumps[5])  # steps 0..5: the fifth snapshot is step 4
    step4 = read_dump(tmp_path / "step4.dump")
    # extended XYZ holds 8 decimals
    np.testing.assert_allclose(last.arrays["mlanet_force_sigma"], step4[:, 2], rtol=0, atol=1e-8)
    assert last.info["mlanet_max_force_sigma"] == pytest.approx(step4[:, 2].max(), rel=1e-12)
    # the written structure is the one of that step: the model gives it the same uncertainties
    last.calc = calc
    np.testing.assert_allclose(calc.get_property("forces_uncertainty", last), step4[:, 2], rtol=1e-6)


@pytest.mark.parametrize("variables, message", [
    ("variable mlanet_uncertainty string yes", "this MLANet model file has no fitted uncertainty"),
    ("variable mlanet_flag_threshold equal 0.5", "mlanet_flag_threshold is set but the per-atom uncertainties are off"),
])
def test_uncertainty_set_up_errors(calibrated, tmp_path, variables, message):
    root, _ = calibrated
    setup(root, tmp_path, "plain" if "string yes" in variables else "model")
    proc = run_lammps(tmp_path, INPUT.replace("compute sigma all property/atom d_mlanet_force_sigma\n", "")
                      .replace("compute umax all reduce max c_sigma\n", "")
                      .replace(" c_umax", "").replace(" d_mlanet_energy_sigma d_mlanet_force_sigma", "")
                      .format(variables=variables, steps=0), 1, check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
