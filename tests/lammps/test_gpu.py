"""GPU paths (run only where CUDA is available): the calculator, the per-rank module and LAMMPS with a model
exported for --device cuda give the CPU results in float64."""

import numpy as np
import pytest
import torch

from mlanet_lammps.calculator import MLANetCalculator
from mlanet_lammps.lammps.export import export
from mlanet_lammps.lammps.module import LammpsMLANet
from mlanet_lammps.train.checkpoint import save_checkpoint
from tests.conftest import make_model
from tests.lammps.conftest import LMP, single_point

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_calculator_on_gpu_matches_cpu(water_atoms):
    model = make_model([1, 8], cutoff=4.0)
    cpu, gpu = water_atoms.copy(), water_atoms.copy()
    cpu.calc = MLANetCalculator(model)
    gpu.calc = MLANetCalculator(make_model([1, 8], cutoff=4.0), device="cuda")
    assert gpu.get_potential_energy() == pytest.approx(cpu.get_potential_energy(), rel=1e-11)
    np.testing.assert_allclose(gpu.get_forces(), cpu.get_forces(), atol=1e-10)
    np.testing.assert_allclose(gpu.get_stress(), cpu.get_stress(), atol=1e-10)


@pytest.mark.parametrize("max_pairs", [0, 2000])
def test_module_on_gpu_matches_cpu(max_pairs):
    """Whole, and in chunks of about 2,000 (pair, layer) evaluations on the GPU."""
    model = make_model([1, 8], cutoff=3.5, channels=6, l_max=1)
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 9, size=(120, 3))
    i, j = np.nonzero((np.linalg.norm(pos[:, None] - pos[None], axis=-1) < 3.5) & ~np.eye(120, dtype=bool))
    args = (torch.tensor(pos[j] - pos[i]), torch.tensor(i), torch.tensor(j), torch.tensor(rng.integers(0, 2, 120)))
    e_cpu, f_cpu, n_cpu = LammpsMLANet(model)(*args, 40, True)
    e_gpu, f_gpu, n_gpu = LammpsMLANet(make_model([1, 8], cutoff=3.5, channels=6, l_max=1).cuda())(
        *(a.cuda() for a in args), 40, True, max_pairs)
    assert n_gpu == n_cpu if max_pairs == 0 else n_gpu > n_cpu
    torch.testing.assert_close(e_gpu.cpu()[:40], e_cpu[:40], rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(f_gpu.cpu(), f_cpu, rtol=1e-10, atol=1e-11)


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
