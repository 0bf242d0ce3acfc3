"""NVE energy conservation in LAMMPS with a (briefly) trained MLANet: 2,000 steps of 0.5 fs for the 64-molecule
water box. The drift figure is printed (run pytest with -s to see it)."""

import numpy as np
import pytest

from mlanet_lammps.lammps.export import export
from mlanet_lammps.train.config import config_from_dict
from mlanet_lammps.train.loop import train
from tests.conftest import ROOT, WATER
from tests.lammps.conftest import require_lammps, run_lammps

pytestmark = [pytest.mark.lammps, pytest.mark.slow]


@pytest.fixture(scope="module")
def trained_water(tmp_path_factory):
    """A small MLANet trained for 90 s on 32 real water frames, exported in float64."""
    require_lammps()
    root = tmp_path_factory.mktemp("nve")
    cfg = config_from_dict({
        "data": {"train_file": str(WATER), "max_frames": 40, "valid_fraction": 0.2},
        "model": {"cutoff": 4.0, "num_layers": 2, "l_max": 1, "channels": 16},
        "training": {"output_dir": str(root / "run"), "max_epochs": 1000, "max_time": 90, "batch_size": 2,
                     "lr": 0.01, "lr_schedule": "cosine", "min_lr": 1e-4, "dtype": "float32", "progress": False,
                     "num_threads": 2}})
    summary = train(cfg, log=lambda _: None)
    assert summary["val_forces_rmse"] < 600.0  # a physical potential, not a random one (meV/Å)
    export(root / "run" / "best.ckpt", root / "water.mliap.pt", dtype="float64", device="cpu")
    return root


def test_nve_energy_conservation(trained_water):
    work = trained_water
    (work / "water_192.data").write_bytes((ROOT / "lammps_inputs" / "water_192.data").read_bytes())
    script = (ROOT / "lammps_inputs" / "water_nvt_nve.in").read_text().replace("thermo          100",
                                                                                "thermo          20")
    run_lammps(work, script, nprocs=1, timeout=1500,
               variables={"model": work / "water", "nvt_steps": 200, "nve_steps": 2000, "dt": 0.0005, "T": 300})
    log = (work / "log.lammps").read_text()
    block = log.split("Step")[-1].splitlines()[1:]
    rows = np.array([[float(x) for x in line.split()] for line in block if line.split() and
                     line.split()[0].isdigit()])
    steps, temp, etotal = rows[:, 0], rows[:, 2], rows[:, 5]
    assert steps[-1] - steps[0] == 2000
    n_atoms = 192
    deviation = np.abs(etotal - etotal[0]).max() / n_atoms * 1000.0  # meV/atom
    drift = (etotal[-1] - etotal[0]) / n_atoms * 1000.0
    print(f"\nNVE water 192 atoms, 2000 x 0.5 fs: max |E - E0| {deviation:.4f} meV/atom, "
          f"end drift {drift:.4f} meV/atom, "
          f"T {temp.min():.0f}-{temp.max():.0f} K")
    assert temp.max() < 1500.0  # the structure holds together
    assert deviation < 0.5
