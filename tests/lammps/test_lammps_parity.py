"""LAMMPS (pair_style mliap unified, exported MLANet) against the ASE calculator, and across MPI rank counts,
in float64: energies, per-atom energies, forces and virial pressure."""

import ase
import ase.build
import ase.io
import numpy as np
import pytest

from mlanet_lammps.calculator import MLANetCalculator
from mlanet_lammps.lammps.export import export
from mlanet_lammps.train.checkpoint import save_checkpoint
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


@pytest.mark.parametrize("nprocs,exchange", [(2, "1"), (2, "0"), (1, "1")])
def test_chunked_evaluation_matches_whole(exported, tmp_path, monkeypatch, nprocs, exchange):
    """MLANET_MAX_PAIRS small enough for several chunks per rank changes nothing (memory-bounded evaluation): layer
    by layer with checkpointed chunks and ghost features exchanged between 2 ranks, and whole-model chunks that
    recompute ghosts (2 ranks without the exchange, 1 rank)."""
    root, _ = exported
    monkeypatch.setenv("MLANET_GHOST_EXCHANGE", exchange)
    results = {}
    for label, max_pairs in (("whole", "0"), ("chunked", "3000")):
        monkeypatch.setenv("MLANET_MAX_PAIRS", max_pairs)
        work = tmp_path / label
        work.mkdir()
        copy_model(root, work)
        results[label] = single_point(work, SYSTEMS["water"], ["H", "O"], nprocs)
    assert_same_physics(results["chunked"], results["whole"])


def off_and_on(root, tmp_path, monkeypatch, variable: str, name: str, elements, nprocs: int):
    """single_point results of SYSTEMS[name] on nprocs ranks with the environment variable set to 0, then to 1."""
    results = []
    for flag in ("0", "1"):
        monkeypatch.setenv(variable, flag)
        work = tmp_path / f"{name}-{variable}-{flag}"
        work.mkdir()
        copy_model(root, work)
        results.append(single_point(work, SYSTEMS[name], elements, nprocs))
    return results


def assert_same_physics(out: dict, ref: dict) -> None:
    assert out["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(out["forces"], ref["forces"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(out["energies"], ref["energies"], rtol=0, atol=1e-11)
    np.testing.assert_allclose(out["pressure"], ref["pressure"], rtol=1e-10, atol=1e-6)


@pytest.mark.parametrize("nprocs", [1, 2])
def test_folding_image_ghosts_changes_nothing(exported, tmp_path, monkeypatch, nprocs):
    """Ghosts that are periodic images of the rank's own atoms reuse their features (images.py): the same energies,
    forces and virial as recomputing them (MLANET_GHOST_IMAGES=0), on the triclinic box smaller than the ghost shell
    (atoms that are images of themselves) and on water."""
    for name in ("triclinic_small_water", "water"):
        ref, out = off_and_on(exported[0], tmp_path, monkeypatch, "MLANET_GHOST_IMAGES", name, ["H", "O"], nprocs)
        assert_same_physics(out, ref)


@pytest.mark.parametrize("nprocs", [2, 4])
def test_exchanging_ghost_features_changes_nothing(exported, tmp_path, monkeypatch, nprocs):
    """Ranks that receive ghost-atom features from their owners between layers (exchange.py) get the same energies,
    forces and virial as ranks that recompute them (MLANET_GHOST_EXCHANGE=0), on water, the small triclinic box
    (ghosts that are images of local atoms and of other ranks' atoms) and the formate slab (vacuum, a rank with few
    atoms)."""
    for name, elements in (("water", ["H", "O"]), ("triclinic_small_water", ["H", "O"]),
                           ("formate_slab", ELEMENTS)):
        ref, out = off_and_on(exported[0], tmp_path, monkeypatch, "MLANET_GHOST_EXCHANGE", name, elements, nprocs)
        assert f"{nprocs} MPI ranks exchange ghost-atom features" in out["stdout"]
        assert "exchange ghost-atom features" not in ref["stdout"]
        assert_same_physics(out, ref)
