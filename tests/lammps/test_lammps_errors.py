"""Bad LAMMPS set-ups give a clear error instead of a crash or silently wrong forces."""

import io
import os

import pytest
import torch

from mlanet_lammps.cli.export import main as export_main
from mlanet_lammps.errors import MLANetInputError
from mlanet_lammps.lammps.export import export
from mlanet_lammps.lammps.module import LammpsMLANet
from mlanet_lammps.lammps.wrapper import MLANetLammpsError, MLANetMLIAP
from tests.conftest import make_model
from tests.lammps.conftest import export_small_water_model, run_lammps, write_data

ELEMENTS = ["H", "O"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return export_small_water_model(tmp_path_factory.mktemp("errmodel")).parent


BASE = """units metal
atom_style atomic
read_data water.data
variable mlanet_elements string "{elements}"
include m.lammps.in
{extra}
run 0
"""


def lammps_error(model_dir, tmp_path, water_atoms, elements="O H", extra=""):
    for name in ("m.mliap.pt", "m.lammps.in"):
        (tmp_path / name).write_bytes((model_dir / name).read_bytes())
    write_data(water_atoms, tmp_path / "water.data", ["O", "H"])
    proc = run_lammps(tmp_path, BASE.format(elements=elements, extra=extra), check=False)
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


@pytest.mark.lammps
def test_type_mapped_to_element_the_model_does_not_know(model_dir, tmp_path, water_atoms):
    out = lammps_error(model_dir, tmp_path, water_atoms, elements="O N")
    assert "pair_coeff maps LAMMPS atom types to N, which this MLANet model does not know (it knows H O)" in out


@pytest.mark.lammps
def test_type_mapped_to_null(model_dir, tmp_path, water_atoms):
    out = lammps_error(model_dir, tmp_path, water_atoms, elements="O NULL")
    assert "All pair coeffs are not set" in out  # LAMMPS itself stops before the model runs


@pytest.mark.lammps
def test_newton_off_is_refused(model_dir, tmp_path, water_atoms):
    out = lammps_error(model_dir, tmp_path, water_atoms, extra="newton off on")
    assert "requires newton pair on" in out


@pytest.mark.lammps
def test_too_small_comm_cutoff_is_refused(model_dir, tmp_path, water_atoms, monkeypatch):
    """2 layers x r_cut 3.5 Å need 7 Å of ghosts; LAMMPS' own minimum (r_cut + skin = 4.5 Å) is not enough."""
    out = lammps_error(model_dir, tmp_path, water_atoms, extra="comm_modify cutoff 4.5")
    assert "comm_modify cutoff too small" in out and "set comm_modify cutoff 8 as in the exported" in out
    monkeypatch.setenv("MLANET_ALLOW_SHORT_GHOSTS", "1")  # the documented way out for sparse systems
    proc = run_lammps(tmp_path, BASE.format(elements="O H", extra="comm_modify cutoff 4.5"), check=False)
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_dtype_mismatch_in_model_file_is_reported():
    model = make_model([1, 8], cutoff=3.5, channels=4, l_max=1)
    from e3nn.util.jit import script
    scripted = script(LammpsMLANet(model.to(torch.float32)))
    wrapper = MLANetMLIAP(scripted, ELEMENTS, 3.5, 2, "float64", "cpu")
    buf = io.BytesIO()
    torch.save(wrapper, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    with pytest.raises(MLANetLammpsError, match="declares float64 but its weights are.*re-export"):
        loaded.module()


def test_cutoff_mismatch_in_model_file_is_reported():
    """A file whose declared cutoff (what LAMMPS uses) differs from its network's is refused, not run."""
    model = make_model([1, 8], cutoff=3.5, channels=4, l_max=1)
    from e3nn.util.jit import script
    wrapper = MLANetMLIAP(script(LammpsMLANet(model)), ELEMENTS, 4.0, 2, "float64", "cpu")
    buf = io.BytesIO()
    torch.save(wrapper, buf)
    buf.seek(0)
    with pytest.raises(MLANetLammpsError, match="declares r_cut 4 Å and 2 layers but its network has r_cut 3.5 Å"):
        torch.load(buf, weights_only=False).module()


def test_export_rejects_bad_arguments(model_dir, tmp_path):
    with pytest.raises(MLANetInputError, match="ending in .pt"):
        export(model_dir / "m.ckpt", tmp_path / "m.pkl")
    with pytest.raises(MLANetInputError, match="unknown dtype"):
        export(model_dir / "m.ckpt", tmp_path / "m.pt", dtype="float16")
    with pytest.raises(MLANetInputError, match="checkpoint not found"):
        export(tmp_path / "none.ckpt", tmp_path / "m.pt")
    with pytest.raises(MLANetInputError, match="--max-pairs: -1 is negative"):
        export(model_dir / "m.ckpt", tmp_path / "m.pt", max_pairs=-1)


def test_export_cli_rejects_bad_max_pairs(model_dir, tmp_path, capsys):
    assert export_main([str(model_dir / "m.ckpt"), "-o", str(tmp_path / "m.pt"), "--max-pairs", "lots"]) == 2
    assert "--max-pairs: 'lots' is neither auto nor a whole number" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


def test_bad_max_pairs_environment_is_clear(model_dir, monkeypatch):
    monkeypatch.setenv("MLANET_MAX_PAIRS", "1e6")
    loaded = torch.load(model_dir / "m.mliap.pt", weights_only=False)
    with pytest.raises(MLANetLammpsError, match="MLANET_MAX_PAIRS='1e6' is neither auto nor a whole number"):
        loaded.module()


def test_auto_chunk_size_follows_free_memory(monkeypatch):
    """The per-chunk budget is MEMORY_FRACTION of the rank's share of free memory, never below MIN_PAIRS."""
    from mlanet_lammps.lammps import resources
    monkeypatch.setattr(resources, "local_size", lambda: 4)
    monkeypatch.setattr(resources, "free_bytes", lambda device: 256 * 2**30)
    cpu = torch.device("cpu")
    per_pair = resources.bytes_per_pair(24, 1, 4)
    assert resources.auto_max_pairs(cpu, per_pair, 4) == resources.CPU_MAX_PAIRS
    monkeypatch.setattr(resources, "free_bytes", lambda device: 8 * 2**30)
    expected = int(8 * 2**30 * resources.MEMORY_FRACTION / 4 / per_pair)
    assert resources.auto_max_pairs(cpu, per_pair, 4) == expected
    monkeypatch.setattr(resources, "free_bytes", lambda device: 2**20)
    assert resources.auto_max_pairs(cpu, per_pair, 4) == resources.MIN_PAIRS
    # ranks sharing a device: 4 ranks on the node, 3 GPUs, round-robin puts ranks 0 and 3 on cuda:0
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert resources.ranks_sharing(cpu, False) == 4
    assert resources.ranks_sharing(torch.device("cuda:0"), True) == 2
    assert resources.ranks_sharing(torch.device("cuda:2"), True) == 1
    assert resources.ranks_sharing(torch.device("cuda:1"), False) == 4  # every rank pinned to cuda:1
    monkeypatch.undo()
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < resources.free_bytes(torch.device("cpu")) <= total


def test_cuda_request_without_gpu_is_clear():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from mlanet_lammps.lammps.wrapper import resolve_device
    with pytest.raises(MLANetLammpsError, match="sees no CUDA GPU; re-export with --device cpu"):
        resolve_device("cuda")
