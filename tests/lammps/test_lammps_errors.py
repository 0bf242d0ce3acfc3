"""Bad LAMMPS set-ups give one clear error, on every rank, instead of a crash, a hang or silently wrong forces."""

import os
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch

from mlanet_lammps.cli.export import main as export_main
from mlanet_lammps.errors import MLANetInputError
from mlanet_lammps.lammps.errors import MLANetLammpsError
from mlanet_lammps.lammps.export import export
from mlanet_lammps.lammps.settings import LammpsSettings
from mlanet_lammps.lammps.snippet import file_sha256, snippet_text
from tests.lammps.conftest import export_small_water_model, run_lammps, write_data


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return export_small_water_model(tmp_path_factory.mktemp("errmodel")).parent


BASE = """units {units}
atom_style atomic
{processors}
read_data water.data
{elements}
include m.lammps.in
{extra}
run 0
"""


def lammps_error(model_dir, tmp_path, atoms, elements="O H", extra="", units="metal", nprocs=1, processors="",
                 specorder=("O", "H"), copy=True):
    """stdout + stderr of a LAMMPS run that must fail (within 120 s: an error on one rank must not hang); copy: put
    the model of model_dir in tmp_path first."""
    for name in ("m.mliap.pt", "m.lammps.in") if copy else ():
        (tmp_path / name).write_bytes((model_dir / name).read_bytes())
    write_data(atoms, tmp_path / "water.data", list(specorder))
    define = f'variable mlanet_elements string "{elements}"' if elements else ""
    proc = run_lammps(tmp_path, BASE.format(units=units, processors=processors, elements=define, extra=extra),
                      nprocs=nprocs, check=False, timeout=120)
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


@pytest.mark.lammps
@pytest.mark.parametrize("setup,expected", [
    ({"elements": "O N"}, ["pair_coeff maps LAMMPS atom types to N, which this MLANet model does not know "
                           "(it knows H O)"]),
    ({"elements": "H O"}, ["atom type 1 has mass 15.999 (that of O) but pair_coeff maps it to H",
                           "set mlanet_elements to one element per atom type in type order"]),
    ({"elements": ""}, ["MLANet needs the element of each atom type:", "define variable mlanet_elements"]),
    ({"units": "real"}, ["LAMMPS units are 'real' but MLANet works in Å and eV: put 'units metal'"]),
    ({"extra": "newton off on"}, ["requires newton pair on"]),
    ({"extra": "fix pm all property/atom rmass\nset type 1 mass 15.999\nset type 2 mass 15.999"},
     ["atom type 2 has mass 15.999 (that of O) but pair_coeff maps it to H"]),
], ids=["unknown-element", "swapped-elements", "no-element-order", "units-real", "newton-off", "per-atom-masses"])
def test_bad_setup_gives_one_clear_error(model_dir, tmp_path, water_atoms, setup, expected):
    out = lammps_error(model_dir, tmp_path, water_atoms, **setup)
    for text in expected:
        assert text in out


@pytest.mark.lammps
def test_error_on_one_rank_stops_every_rank(model_dir, tmp_path, water_atoms):
    """Atoms of an element the model does not know only in rank 0's half of a box twice as long as the ghost cutoff
    needs (no rank 1 ghost sees them): both ranks stop with rank 0's message (no hang: lammps_error's time limit)."""
    atoms = water_atoms.repeat((2, 1, 1))
    symbols = np.array(atoms.get_chemical_symbols(), dtype=object)
    x = atoms.positions[:, 0] / atoms.cell[0, 0]
    symbols[(x > 0.2) & (x < 0.3) & (symbols == "O")] = "N"
    atoms.set_chemical_symbols(symbols.tolist())
    out = lammps_error(model_dir, tmp_path, atoms, elements="O H N", nprocs=2, processors="processors 2 1 1",
                       specorder=("O", "H", "N"))
    message = "which this MLANet model does not know (it knows H O)"
    assert out.count(message) >= 2, out[-3000:]  # printed by each rank
    assert "MPI rank 0: pair_coeff maps LAMMPS atom types to N" in out


@pytest.mark.lammps
def test_right_per_atom_masses_pass(model_dir, tmp_path, water_atoms):
    """Per-atom masses (rmass) that match the elements, isotopes included: the run goes through."""
    for name in ("m.mliap.pt", "m.lammps.in"):
        (tmp_path / name).write_bytes((model_dir / name).read_bytes())
    write_data(water_atoms, tmp_path / "water.data", ["O", "H"])
    extra = "fix pm all property/atom rmass\nset type 1 mass 15.999\nset type 2 mass 2.014"  # heavy water
    run_lammps(tmp_path, BASE.format(units="metal", processors="", extra=extra,
                                     elements='variable mlanet_elements string "O H"'), timeout=120)


@pytest.mark.lammps
def test_failure_inside_the_exchange_stops_every_rank(model_dir, tmp_path, water_atoms, monkeypatch):
    """Rank 1 fails in the ghost exchange while rank 0 waits in it: both stop within the time limit (MPI_Abort),
    with rank 1's message."""
    from tests.lammps import failing_model
    model = torch.load(model_dir / "m.mliap.pt", weights_only=False)
    model.__class__ = failing_model.FailsInExchangeOnRank1
    path = tmp_path / "f.mliap.pt"
    torch.save(model, path)
    (tmp_path / "m.lammps.in").write_text(snippet_text(path, file_sha256(path), model.elements, "failing"))
    monkeypatch.setenv("PYTHONPATH", str(Path(failing_model.__file__).parents[2]))
    out = lammps_error(model_dir, tmp_path, water_atoms.repeat((2, 1, 1)), nprocs=2, processors="processors 2 1 1",
                       copy=False)
    assert f"ERROR on MPI rank 1: MLANet: MemoryError: {failing_model.MESSAGE}" in out


@pytest.mark.lammps
def test_input_without_the_attach_lines_is_refused(model_dir, tmp_path, water_atoms):
    """The snippet's pair_style without its python attach lines: a clear error, not a second route."""
    snippet = (model_dir / "m.lammps.in").read_text()
    hand = "\n".join(line for line in snippet.splitlines() if "mlanet_attach" not in line)
    (tmp_path / "m.mliap.pt").write_bytes((model_dir / "m.mliap.pt").read_bytes())
    (tmp_path / "m.lammps.in").write_text(hand)
    write_data(water_atoms, tmp_path / "water.data", ["O", "H"])
    proc = run_lammps(tmp_path, BASE.format(units="metal", processors="", extra="",
                                            elements='variable mlanet_elements string "O H"'), check=False, timeout=120)
    assert proc.returncode != 0
    assert "this LAMMPS input did not hand MLANet its LAMMPS instance" in proc.stdout + proc.stderr


@pytest.mark.lammps
def test_changed_model_file_is_refused_before_loading(model_dir, tmp_path, water_atoms):
    for name in ("m.mliap.pt", "m.lammps.in"):
        (tmp_path / name).write_bytes((model_dir / name).read_bytes())
    with open(tmp_path / "m.mliap.pt", "ab") as fh:
        fh.write(b"tampered")
    write_data(water_atoms, tmp_path / "water.data", ["O", "H"])
    elements = 'variable mlanet_elements string "O H"\nvariable mlanet_model index m.mliap.pt'  # the copy
    proc = run_lammps(tmp_path, BASE.format(units="metal", processors="", extra="", elements=elements), check=False,
                      timeout=120)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "MLANet model file m.mliap.pt has sha256" in out and "this snippet was exported with" in out
    assert "Loading" not in out.split("has sha256")[0].rsplit("pair_style", 1)[-1]  # stopped before pair_style


class FakeHandle:
    """The parts of the lammps Python object atom_ids reads (LAMMPS refuses read_data files without IDs itself, so
    atom_modify id no with create_atoms is the way to get here)."""

    def __init__(self, ids):
        self.ids = np.asarray(ids)
        self.numpy = self

    def extract_setting(self, name):
        return {"nlocal": 2, "nall": len(self.ids)}[name]

    def extract_atom(self, name, nelem):
        return self.ids[:nelem]


def test_atom_ids_off_are_refused():
    from mlanet_lammps.lammps.handle import atom_ids
    with pytest.raises(MLANetLammpsError, match=r"atom IDs are off \(atom_modify id no\)"):
        atom_ids(FakeHandle([0, 0, 0]), 2, 3)
    with pytest.raises(MLANetLammpsError, match="not the one running it"):
        atom_ids(FakeHandle([1, 2, 1]), 2, 4)
    assert atom_ids(FakeHandle([4, 2, 4]), 2, 3).tolist() == [4, 2, 4]


BONDED = """units metal
atom_style full
read_data water.data extra/bond/types 1 extra/bond/per/atom 2 extra/special/per/atom 4
variable mlanet_elements string "O H"
include m.lammps.in
bond_style zero
bond_coeff 1
create_bonds many all all 1 0.8 1.15
{special}
compute pe all pe/atom
thermo_style custom step pe bonds
thermo_modify format float %24.17g
run 0
"""


@pytest.mark.lammps
def test_bonded_system_needs_special_bonds_of_one(model_dir, tmp_path, water_atoms):
    """atom_style full with O-H bonds: the default special_bonds (0 0 0) would drop the bonded pairs from the
    neighbour list, so it is refused; with 1 1 1 the energy is that of the same atoms without bonds."""
    for name in ("m.mliap.pt", "m.lammps.in"):
        (tmp_path / name).write_bytes((model_dir / name).read_bytes())
    ase.io.write(tmp_path / "water.data", water_atoms, format="lammps-data", specorder=["O", "H"], masses=True,
                 units="metal", atom_style="full")
    proc = run_lammps(tmp_path, BONDED.format(special=""), check=False, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "this system has bonds but special_bonds weights other than 1" in out
    proc = run_lammps(tmp_path, BONDED.format(special="special_bonds lj/coul 1.0 1.0 1.0"), timeout=120)
    from tests.lammps.conftest import read_thermo
    bonded = read_thermo((tmp_path / "log.lammps").read_text())
    assert bonded["Bonds"] == 128
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("m.mliap.pt", "m.lammps.in"):
        (plain / name).write_bytes((model_dir / name).read_bytes())
    write_data(water_atoms, plain / "water.data", ["O", "H"])
    run_lammps(plain, BASE.format(units="metal", processors="", extra="thermo_modify format float %24.17g",
                                  elements='variable mlanet_elements string "O H"'), timeout=120)
    assert bonded["PotEng"] == pytest.approx(read_thermo((plain / "log.lammps").read_text())["E_pair"], rel=1e-12)


def test_old_model_files_are_refused(model_dir):
    loaded = torch.load(model_dir / "m.mliap.pt", weights_only=False)
    state = loaded.__getstate__()
    state["format_version"] = 2  # before the uncertainty head
    with pytest.raises(MLANetLammpsError, match="has format 2, this mlanet_lammps reads format 3: re-export it with "
                                                "mlanet-export"):
        type(loaded).__new__(type(loaded)).__setstate__(state)
    state.pop("format_version")  # the TorchScript files of the first format had none
    with pytest.raises(MLANetLammpsError, match="has format 1, this mlanet_lammps reads format 3"):
        type(loaded).__new__(type(loaded)).__setstate__(state)


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


def test_bad_max_pairs_environment_is_clear():
    with pytest.raises(MLANetInputError, match="MLANET_MAX_PAIRS: '1e6' is neither auto nor a whole number"):
        LammpsSettings.from_environment(None, {"MLANET_MAX_PAIRS": "1e6"})
    assert LammpsSettings.from_environment(7, {}).max_pairs == 7
    assert LammpsSettings.from_environment(7, {"MLANET_MAX_PAIRS": "auto"}).max_pairs is None
    assert LammpsSettings.from_environment(None, {"MLANET_MAX_PAIRS": "0"}).max_pairs == 0


def test_compile_switch_environment_is_clear():
    with pytest.raises(MLANetInputError, match="MLANET_COMPILE: 'true' is neither yes nor no"):
        LammpsSettings.from_environment(None, {"MLANET_COMPILE": "true"})
    assert LammpsSettings.from_environment(None, {}).compile
    assert not LammpsSettings.from_environment(None, {"MLANET_COMPILE": "no"}).compile


def test_auto_chunk_size_follows_free_memory(monkeypatch):
    """The per-chunk budget is MEMORY_FRACTION of the rank's share of free memory, never below MIN_PAIRS, and capped
    on the CPU for the eager evaluator only."""
    from mlanet_lammps.lammps import resources
    monkeypatch.setattr(resources, "local_size", lambda: 4)
    monkeypatch.setattr(resources, "free_bytes", lambda device: 256 * 2**30)
    cpu = torch.device("cpu")
    per_pair = resources.bytes_per_pair(24, 1, 4)
    assert resources.auto_max_pairs(cpu, per_pair, 4, compiled=False) == resources.CPU_MAX_PAIRS
    assert resources.auto_max_pairs(cpu, per_pair, 4, compiled=True) == int(
        256 * 2**30 * resources.MEMORY_FRACTION / 4 / per_pair)
    monkeypatch.setattr(resources, "free_bytes", lambda device: 8 * 2**30)
    expected = int(8 * 2**30 * resources.MEMORY_FRACTION / 4 / per_pair)
    for compiled in (False, True):
        assert resources.auto_max_pairs(cpu, per_pair, 4, compiled) == expected
    monkeypatch.setattr(resources, "free_bytes", lambda device: 2**20)
    assert resources.auto_max_pairs(cpu, per_pair, 4, True) == resources.MIN_PAIRS
    # ranks sharing a device: 4 ranks on the node, 3 GPUs, round-robin puts ranks 0 and 3 on cuda:0
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert resources.ranks_sharing(cpu, False) == 4
    assert resources.ranks_sharing(torch.device("cuda:0"), True) == 2
    assert resources.ranks_sharing(torch.device("cuda:2"), True) == 1
    assert resources.ranks_sharing(torch.device("cuda:1"), False) == 4  # every rank pinned to cuda:1
    # once chunked, a chunk holds its layer's share of the budget, at most CPU_CHUNK_EDGES edges on the CPU
    assert resources.chunk_edges(cpu, 3000, 2) == 1500
    assert resources.chunk_edges(cpu, 10**8, 2) == resources.CPU_CHUNK_EDGES
    assert resources.chunk_edges(torch.device("cuda:0"), 10**8, 2) == 5 * 10**7
    monkeypatch.undo()
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < resources.free_bytes(torch.device("cpu")) <= total
