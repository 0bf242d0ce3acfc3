"""Every bundled LAMMPS input runs (a few steps, 1 and 2 ranks) with an exported model: guards the inputs users
start from against rot. Physics is checked elsewhere; here each run must finish with finite energies."""

import math
import re

import ase.io
import pytest

from mlanet_lammps.calibration import fit_uncertainty, save_with_uncertainty
from mlanet_lammps.checkpoint import save_checkpoint
from mlanet_lammps.data.batch import frame_to_graph
from mlanet_lammps.data.io import read_frames
from mlanet_lammps.lammps.export import export
from tests.conftest import ROOT, WATER, make_model
from tests.lammps.conftest import read_thermo, run_lammps, thermo_rows

pytestmark = pytest.mark.lammps

INPUTS = ROOT / "lammps_inputs"


@pytest.fixture(scope="module")
def model_prefix(tmp_path_factory):
    """A small random-weight model with an uncertainty head (fitted on 3 water frames), exported in float32."""
    root = tmp_path_factory.mktemp("inputs")
    model = make_model([1, 6, 8, 29], cutoff=3.5, channels=4, l_max=1)
    save_checkpoint(root / "plain.ckpt", model.config, model.state_dict())
    frames = read_frames(WATER, index=":4")
    graphs = [frame_to_graph(f, model.cutoff, [1, 6, 8, 29]) for f in frames[:3]]
    save_with_uncertainty(root / "plain.ckpt", root / "m.ckpt", fit_uncertainty(model, graphs, frames[3:]))
    export(root / "m.ckpt", root / "m.mliap.pt", dtype="float32", device="cpu")
    return root / "m"


@pytest.mark.parametrize("name,variables", [
    ("water_nvt_nve.in", {"nvt_steps": 5, "nve_steps": 5}),
    ("formate_cu.in", {"steps": 5}),
    ("triclinic_water.in", {"steps": 5}),
    ("scaling_water.in", {"rep": 1, "steps": 3}),
    ("water_npt.in", {"equil_steps": 2, "prod_steps": 4}),
    ("water_uncertainty.in", {"steps": 6, "every": 2, "threshold": 0.0001, "halt_at": 1e9}),
])
@pytest.mark.parametrize("nprocs", [1, 2])
def test_input_runs(model_prefix, tmp_path, name, variables, nprocs):
    for data in INPUTS.glob("*.data"):
        (tmp_path / data.name).write_bytes(data.read_bytes())
    run_lammps(tmp_path, (INPUTS / name).read_text(), nprocs=nprocs, variables={"model": model_prefix, **variables})
    log = (tmp_path / "log.lammps").read_text()
    thermo = read_thermo(log)
    assert all(math.isfinite(v) for v in thermo.values())
    grid = re.search(r"(\d+) by (\d+) by (\d+) MPI processor grid", log)
    assert math.prod(int(g) for g in grid.groups()) == nprocs
    if name == "water_npt.in":  # the barostat moved the cell and the mean density was printed
        volumes = [row["Volume"] for row in thermo_rows(log)]
        assert volumes[-1] != volumes[0]
        assert 0.0 < float(re.search(r"NPT density: ([0-9.]+) g/cm\^3", log).group(1)) < 10.0
    if name == "water_uncertainty.in":  # every 2nd step flagged (threshold far below), sigma printed and dumped
        assert [f.info["timestep"] for f in ase.io.read(tmp_path / "flagged.extxyz", ":")] == [0, 2, 4, 6]
        assert thermo["c_sigma_max"] > 0 and "largest force uncertainty at the end" in log
