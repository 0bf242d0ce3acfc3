"""GPU paths (run only where CUDA is available): the calculator, the per-rank module and LAMMPS with a model
exported for --device cuda give the CPU results in float64."""

import numpy as np
import pytest
import torch

from mlanet_lammps.calculator import MLANetCalculator
from mlanet_lammps.checkpoint import save_checkpoint
from mlanet_lammps.lammps.exchange import GhostExchange
from mlanet_lammps.lammps.export import export
from mlanet_lammps.model.forces import EnergyAndEdgeGradient
from tests.conftest import make_model
from tests.lammps.conftest import LMP, single_point

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("compile", [False, True])
def test_calculator_on_gpu_matches_cpu(water_atoms, compile):
    """Eager and compiled (Inductor's GPU kernels) on the GPU against the eager CPU model."""
    model = make_model([1, 8], cutoff=4.0)
    cpu, gpu = water_atoms.copy(), water_atoms.copy()
    cpu.calc = MLANetCalculator(model)
    gpu.calc = MLANetCalculator(make_model([1, 8], cutoff=4.0), device="cuda", compile=compile)
    assert gpu.get_potential_energy() == pytest.approx(cpu.get_potential_energy(), rel=1e-11)
    np.testing.assert_allclose(gpu.get_forces(), cpu.get_forces(), atol=1e-10)
    np.testing.assert_allclose(gpu.get_stress(), cpu.get_stress(), atol=1e-10)


@pytest.mark.parametrize("max_edges", [0, 300])
def test_local_atoms_with_ghosts_on_gpu_match_cpu(max_edges):
    """A LAMMPS-like evaluation (40 local atoms, the rest ghost copies filled by the exchange) on the GPU, whole and
    in checkpointed chunks of 300 edges, against the CPU."""
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 9, size=(120, 3))
    i, j = np.nonzero((np.linalg.norm(pos[:, None] - pos[None], axis=-1) < 3.5) & ~np.eye(120, dtype=bool))
    keep = i < 40
    i, j = i[keep], j[keep]
    ids = np.concatenate([np.arange(1, 41), rng.integers(1, 41, 80)])  # ghosts copy local atoms (images)
    args = [torch.tensor(pos[j] - pos[i]), torch.tensor(rng.integers(0, 2, 120)), torch.tensor(np.stack([i, j]))]
    results = []
    for device in ("cpu", "cuda"):
        model = make_model([1, 8], cutoff=3.5, channels=6, l_max=1).to(device)
        model.ghost_features.exchange = GhostExchange(ids, 40, None, torch.device(device))
        results.append(EnergyAndEdgeGradient(model)(*(a.to(device) for a in args), 40, max_edges))
    torch.testing.assert_close(results[1][0].cpu(), results[0][0], rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(results[1][1].cpu(), results[0][1], rtol=1e-10, atol=1e-11)


@pytest.mark.lammps
def test_lammps_with_cuda_export_matches_cpu_export(tmp_path, water_atoms):
    if not LMP.exists():
        pytest.skip("LAMMPS not built")
    model = make_model([1, 8], cutoff=4.0)
    save_checkpoint(tmp_path / "m.ckpt", model.config, model.state_dict())
    results = {}
    for device in ("cpu", "cuda"):
        work = tmp_path / device
        work.mkdir()
        export(tmp_path / "m.ckpt", work / "model.mliap.pt", dtype="float64", device=device)
        results[device] = single_point(work, water_atoms, ["O", "H"])
    assert results["cuda"]["energy"] == pytest.approx(results["cpu"]["energy"], rel=1e-11)
    np.testing.assert_allclose(results["cuda"]["forces"], results["cpu"]["forces"], atol=1e-10)
