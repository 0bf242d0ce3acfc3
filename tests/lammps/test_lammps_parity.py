"""LAMMPS (pair_style mliap unified, exported MLANet) against the ASE calculator, and across MPI rank counts,
in float64: energies, per-atom energies, forces and virial pressure."""

import re

import ase
import ase.build
import ase.io
import numpy as np
import pytest

from mlanet_lammps.calculator import MLANetCalculator
from mlanet_lammps.checkpoint import save_checkpoint
from mlanet_lammps.lammps.export import export
from tests.conftest import FORMATE, WATER, make_model
from tests.lammps.conftest import NKTV2P_METAL, single_point

pytestmark = pytest.mark.lammps
ELEMENTS = ["H", "C", "O", "Cu"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A random-weight float64 MLANet (2 layers, r_cut 4 Å) exported for LAMMPS, and its ASE calculator."""
    root = tmp_path_factory.mktemp("model")
    model = make_model([1, 6, 8, 29], cutoff=4.0)
    save_checkpoint(root / "model.ckpt", model.config, model.state_dict())
    export(root / "model.ckpt", root / "model.mliap.pt", dtype="float64", device="cpu")
    return root, MLANetCalculator(model)


def copy_model(root, workdir):
    for name in ("model.mliap.pt", "model.lammps.in"):
        (workdir / name).write_bytes((root / name).read_bytes())


def systems():
    water = ase.io.read(WATER, 0)
    small = water[:24].copy()
    small.set_cell([[7.0, 0.0, 0.0], [1.2, 7.3, 0.0], [0.8, -0.6, 7.6]], scale_atoms=False)  # triclinic, < comm cutoff
    small.wrap()
    cu = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))  # 7.2 Å box, smaller than the ghost shell
    cu.rattle(0.05, seed=4)
    cu.wrap()
    close = water.copy()  # contacts inside the ZBL switch radii: H-H 0.55 Å, O-H 0.80 Å (the repulsion prior acts)
    hydrogens, oxygens = np.flatnonzero(close.numbers == 1), np.flatnonzero(close.numbers == 8)
    h_a, h_b, o_c = hydrogens[0], hydrogens[20], oxygens[30]
    for moved, anchor, dist in ((h_a, h_b, 0.55), (o_c, h_b, 0.80)):
        d = close.get_distance(anchor, moved, mic=True, vector=True)
        close.positions[moved] = close.positions[anchor] + dist * d / np.linalg.norm(d)
    close.wrap()
    return {"water": water, "water_close_contacts": close, "formate_slab": ase.io.read(FORMATE, 3),
            "triclinic_small_water": small, "cu_small": cu}


SYSTEMS = systems()


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_lammps_matches_ase(exported, tmp_path, name):
    root, calc = exported
    copy_model(root, tmp_path)
    atoms = SYSTEMS[name].copy()
    order = [e for e in ELEMENTS if e in set(atoms.get_chemical_symbols())]
    lmp = single_point(tmp_path, atoms, order)
    atoms.calc = calc
    energy, forces, energies = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_potential_energies()
    stress = atoms.get_stress()  # xx yy zz yz xz xy, eV/Å^3
    assert lmp["energy"] == pytest.approx(energy, rel=1e-10)
    np.testing.assert_allclose(lmp["energies"], energies, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(lmp["forces"], forces, rtol=1e-8, atol=1e-8 * np.abs(forces).max())
    pressure_ase = -np.array([stress[0], stress[1], stress[2], stress[5], stress[4], stress[3]]) * NKTV2P_METAL
    np.testing.assert_allclose(lmp["pressure"], pressure_ase, rtol=1e-8, atol=1e-8 * np.abs(pressure_ase).max())


def test_type_order_follows_pair_coeff(exported, tmp_path):
    """pair_coeff * * O H and * * H O with the matching data files give the same physics."""
    root, calc = exported
    water = SYSTEMS["water"]
    results = []
    for order in (["O", "H"], ["H", "O"]):
        work = tmp_path / "".join(order)
        work.mkdir()
        copy_model(root, work)
        results.append(single_point(work, water, order))
    assert results[0]["energy"] == pytest.approx(results[1]["energy"], rel=1e-12)
    np.testing.assert_allclose(results[0]["forces"], results[1]["forces"], atol=1e-12)


@pytest.mark.parametrize("nprocs", [2, 4])
def test_mpi_ranks_agree_on_water(exported, tmp_path, nprocs):
    root, _ = exported
    ref_dir, run_dir = tmp_path / "np1", tmp_path / f"np{nprocs}"
    for d in (ref_dir, run_dir):
        d.mkdir()
        copy_model(root, d)
    ref = single_point(ref_dir, SYSTEMS["water"], ["H", "O"], 1)
    out = single_point(run_dir, SYSTEMS["water"], ["H", "O"], nprocs)
    assert out["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(out["forces"], ref["forces"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(out["energies"], ref["energies"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(out["pressure"], ref["pressure"], rtol=1e-9, atol=1e-6)


def test_mpi_with_empty_rank_and_isolated_atom(exported, tmp_path):
    """Slab along z split over 4 ranks: one rank owns no atom, another owns only an atom with no neighbours."""
    root, calc = exported
    slab = ase.io.read(FORMATE, 3)
    slab += ase.Atom("H", (5.0, 5.0, 25.0))  # > r_cut from everything, periodic images included
    results = {}
    for nprocs, grid in ((1, ""), (4, "processors 1 1 4")):
        work = tmp_path / f"np{nprocs}"
        work.mkdir()
        copy_model(root, work)
        results[nprocs] = single_point(work, slab, ELEMENTS, nprocs, grid)
        log = (work / "log.lammps").read_text()
        if nprocs == 4:
            assert "1 by 1 by 4 MPI processor grid" in log
    slab.calc = calc
    assert results[4]["energy"] == pytest.approx(results[1]["energy"], rel=1e-12)
    assert results[4]["energy"] == pytest.approx(slab.get_potential_energy(), rel=1e-10)
    np.testing.assert_allclose(results[4]["forces"], results[1]["forces"], atol=1e-8)
    np.testing.assert_allclose(results[4]["forces"][-1], 0.0, atol=1e-14)  # the isolated atom
    assert results[4]["energies"][-1] == pytest.approx(slab.get_potential_energies()[-1], rel=1e-12)


@pytest.mark.parametrize("nprocs", [1, 2])
def test_chunked_evaluation_matches_whole(exported, tmp_path, monkeypatch, nprocs):
    """MLANET_MAX_PAIRS small enough for several checkpointed chunks per layer and rank changes nothing."""
    root, _ = exported
    results = {}
    for label, max_pairs in (("whole", "0"), ("chunked", "3000")):
        monkeypatch.setenv("MLANET_MAX_PAIRS", max_pairs)
        work = tmp_path / label
        work.mkdir()
        copy_model(root, work)
        results[label] = single_point(work, SYSTEMS["water"], ["H", "O"], nprocs)
        bound = ("3000 pair-layer evaluations at once, beyond that checkpointed chunks of 1500 pairs"
                 if label == "chunked" else "no memory bound")
        assert f"max_pairs={max_pairs} ({bound})" in results[label]["stdout"]
    assert_same_physics(results["chunked"], results["whole"])


def assert_same_physics(out: dict, ref: dict) -> None:
    assert out["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(out["forces"], ref["forces"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(out["energies"], ref["energies"], rtol=0, atol=1e-11)
    np.testing.assert_allclose(out["pressure"], ref["pressure"], rtol=1e-10, atol=1e-6)


@pytest.mark.parametrize("nprocs", [2, 4])
def test_small_boxes_and_slab_agree_across_ranks(exported, tmp_path, nprocs):
    """The triclinic box smaller than the ghost cutoff (ghosts that are images of local atoms and of other ranks'
    atoms) and the formate slab (vacuum, ranks with few atoms) on N ranks equal one rank."""
    for name, elements in (("triclinic_small_water", ["H", "O"]), ("formate_slab", ELEMENTS)):
        results = []
        for ranks in (1, nprocs):
            work = tmp_path / f"{name}-{ranks}"
            work.mkdir()
            copy_model(exported[0], work)
            results.append(single_point(work, SYSTEMS[name], elements, ranks))
        assert_same_physics(results[1], results[0])


HYBRID = """units metal
atom_style atomic
read_data structure.data
variable mlanet_elements string "O H NULL"
variable mlanet_overlay string "lj/cut 3.0"
include model.lammps.in
pair_coeff 1*3 3 lj/cut 0.01 2.5
compute pe all pe/atom
dump 1 all custom 1 out.dump id type fx fy fz c_pe
dump_modify 1 format float %24.17g sort id
thermo_style custom step pe
thermo_modify format float %24.17g
run 0
"""


@pytest.mark.parametrize("nprocs", [1, 2])
def test_hybrid_overlay_with_null_types(exported, tmp_path, nprocs):
    """pair_style hybrid/overlay with a third type mapped to NULL: MLANet sees only the water atoms (type-3 atoms get
    no MLANet pairs and no MLANet energy), plus lj/cut on every pair with a type-3 atom; against MLANet on the water
    alone (ASE) plus LAMMPS' lj/cut alone."""
    root, calc = exported
    water = SYSTEMS["water"]
    extra = ase.Atoms("He2", positions=[[1.0, 1.0, 1.0], [6.0, 6.5, 7.0]])  # stands in for any other species
    both = water + extra
    from tests.lammps.conftest import read_dump, read_thermo, run_lammps
    copy_model(root, tmp_path)
    ase.io.write(tmp_path / "structure.data", both, format="lammps-data", specorder=["O", "H", "He"], masses=True,
                 units="metal", atom_style="atomic")
    run_lammps(tmp_path, HYBRID, nprocs)
    hybrid_e = read_thermo((tmp_path / "log.lammps").read_text())["PotEng"]
    hybrid = read_dump(tmp_path / "out.dump")
    lj_dir = tmp_path / "lj"
    lj_dir.mkdir()
    ase.io.write(lj_dir / "structure.data", both, format="lammps-data", specorder=["O", "H", "He"], masses=True,
                 units="metal", atom_style="atomic")
    lj_only = HYBRID.replace('variable mlanet_elements string "O H NULL"\nvariable mlanet_overlay string '
                             '"lj/cut 3.0"\ninclude model.lammps.in\npair_coeff 1*3 3 lj/cut 0.01 2.5',
                             "pair_style lj/cut 3.0\npair_coeff * * 0.0 1.0\npair_coeff 1*3 3 0.01 2.5")
    run_lammps(lj_dir, lj_only, nprocs)
    lj_e = read_thermo((lj_dir / "log.lammps").read_text())["PotEng"]
    lj = read_dump(lj_dir / "out.dump")
    water = water.copy()
    water.calc = calc
    n = len(water)
    assert abs(lj_e) > 1e-6  # the lj/cut term is there and differs from zero
    assert hybrid_e == pytest.approx(water.get_potential_energy() + lj_e, rel=1e-10)
    np.testing.assert_allclose(hybrid[:n, 2:5], water.get_forces() + lj[:n, 2:5], rtol=0, atol=1e-8)
    np.testing.assert_allclose(hybrid[n:, 2:5], lj[n:, 2:5], rtol=0, atol=1e-12)
    np.testing.assert_allclose(hybrid[n:, 5], lj[n:, 5], rtol=0, atol=1e-12)  # no MLANet energy on type 3


REBUILDS = """units metal
atom_style atomic
read_data structure.data
variable mlanet_elements string "H O"
include model.lammps.in
neighbor 1.0 bin
neigh_modify every 10 delay 0 check no
velocity all create 300 4 mom yes
fix 1 all nve
timestep 0.0005
run 30
python source here "from mlanet_lammps.lammps.handle import attached"
python source here "[open(f'rebuilds.{m._evaluator.comm.Get_rank()}', 'w').write(str(m._evaluator.rebuilds)) &
  for m in attached]"
"""


def test_exchange_plan_is_rebuilt_only_when_lammps_reneighbours(exported, tmp_path):
    """30 MD steps on 2 ranks, reneighbouring every 10: the ghost exchange is built at most once per neighbour list
    (at the start and after each of LAMMPS' builds), not every step."""
    from tests.lammps.conftest import run_lammps, write_data
    copy_model(exported[0], tmp_path)
    write_data(SYSTEMS["water"], tmp_path / "structure.data", ["H", "O"])
    proc = run_lammps(tmp_path, REBUILDS, nprocs=2)
    builds = int(re.search(r"Neighbor list builds = (\d+)", proc.stdout).group(1))
    # each rank writes its count to a file: mpirun can drop a rank's last stdout lines at exit
    rebuilds = [int((tmp_path / f"rebuilds.{rank}").read_text()) for rank in range(2)]
    assert builds == 3
    assert all(2 <= r <= builds + 1 for r in rebuilds), rebuilds
