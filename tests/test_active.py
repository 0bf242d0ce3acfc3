"""mlanet-active end to end on a small molecule: MD with a calibrated model, flagged frames, GFN1-xTB labels
(tblite), fine-tuning, the report; a crash resumes in its iteration without labelling anything twice."""

import csv

import ase.build
import ase.io
import numpy as np
import pytest
import yaml

from mlanet_lammps import active
from mlanet_lammps.active import ActiveConfig, farthest_points, run_active
from mlanet_lammps.checkpoint import load_model
from mlanet_lammps.cli.active import main as active_main
from mlanet_lammps.errors import MLANetInputError
from mlanet_lammps.train.config import config_from_dict
from mlanet_lammps.train.loop import train
from tests.conftest import WATER

tblite_ase = pytest.importorskip("tblite.ase")
LABELLER = {"module": "tblite.ase", "class": "TBLite", "kwargs": {"method": "GFN1-xTB", "verbosity": 0}}
MODEL = {"cutoff": 4.0, "channels": 4, "l_max": 1, "num_layers": 2, "embed_dim": 4, "radial_hidden": 8,
         "chem_hidden": 8, "att_channels": 2, "readout_hidden": 8, "density_l_max": -1}


def labelled_ethanol(count: int, seed: int):
    frames = []
    for k in range(count):
        atoms = ase.build.molecule("CH3CH2OH")
        atoms.rattle(0.08, seed=seed + k)
        atoms.calc = tblite_ase.TBLite(method="GFN1-xTB", verbosity=0)
        atoms.info["energy"] = atoms.get_potential_energy()
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.calc = None
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """A tiny model trained on 8 labelled ethanol frames (calibrated), its frames, a test set and a start file."""
    root = tmp_path_factory.mktemp("active")
    ase.io.write(root / "train.extxyz", labelled_ethanol(8, 0))
    ase.io.write(root / "test.extxyz", labelled_ethanol(4, 100))
    ase.io.write(root / "start.extxyz", ase.build.molecule("CH3CH2OH"))
    cfg = config_from_dict({"data": {"train_file": str(root / "train.extxyz"), "valid_fraction": 0.25},
                            "model": MODEL,
                            "training": {"output_dir": str(root / "start"), "max_epochs": 3, "batch_size": 2,
                                         "dtype": "float64", "progress": False}})
    train(cfg, log=lambda _: None)
    return root


def write_config(root, out, **kw):
    raw = {"model": str(root / "start" / "best.ckpt"), "train_file": str(root / "train.extxyz"),
           "test_file": str(root / "test.extxyz"), "start_file": str(root / "start.extxyz"), "labeller": LABELLER,
           "output_dir": str(out), "iterations": 2, "temperatures": [500.0], "steps": 8, "timestep_fs": 0.5,
           "sample_every": 2, "threshold": 1e-6, "max_labels": 2, "fine_tune": {"max_epochs": 2}}
    raw.update(kw)
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_loop_runs_and_resumes_without_relabelling(start, tmp_path, monkeypatch):
    calls = []
    real = active.make_labeller

    def counting(spec):
        calc = real(spec)
        original = calc.calculate

        def calculate(*args, **kwargs):
            calls.append(1)
            return original(*args, **kwargs)

        calc.calculate = calculate
        return calc

    monkeypatch.setattr(active, "make_labeller", counting)
    out = tmp_path / "run"
    cfg = ActiveConfig.load(write_config(start, out))

    def crash(*args, **kwargs):
        raise RuntimeError("node lost")

    real_fine_tune = active.fine_tune
    monkeypatch.setattr(active, "fine_tune", crash)
    with pytest.raises(RuntimeError, match="node lost"):
        run_active(cfg, log=lambda _: None)
    labelled_before = len(calls)
    assert labelled_before == 2 and len(list((out / "iter_1" / "labels").glob("*.extxyz"))) == 2
    monkeypatch.setattr(active, "fine_tune", real_fine_tune)
    rows = run_active(cfg, log=lambda _: None)
    assert len(calls) == labelled_before + 2  # iteration 1's labels were read back, only iteration 2 labelled
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    # 8 steps sampled every 2 from one start at one temperature: 5 frames, all above the tiny threshold
    assert [(r["md_frames"], r["flagged"], r["labelled"], r["train_labels"]) for r in rows[1:]] == [(5, 5, 2, 2),
                                                                                                   (5, 5, 2, 4)]
    report = list(csv.DictReader((out / "report.csv").open()))
    assert [int(r["iteration"]) for r in report] == [0, 1, 2]
    assert all(np.isfinite(float(r["test_forces_rmse"])) for r in report)
    final = load_model(rows[-1]["model"])
    assert len(final.uncertainty) == 1  # each fine-tuned model is calibrated
    labels = ase.io.read(out / "iter_2" / "labels" / "000.extxyz")
    assert labels.info["config_type"] == "active" and labels.get_forces().shape == (9, 3)
    # a finished run resumes to a no-op
    assert len(run_active(cfg, log=lambda _: None)) == 3 and len(calls) == labelled_before + 2


def test_threshold_flags_nothing_and_cli(start, tmp_path, capsys):
    out = tmp_path / "quiet"
    assert active_main([str(write_config(start, out, threshold=1e6, iterations=1))]) == 0
    row = list(csv.DictReader((out / "report.csv").open()))[-1]
    assert (row["flagged"], row["labelled"]) == ("0", "0")
    assert "flagged 0/5 MD frames" in capsys.readouterr().out


def test_bad_config_is_one_line(start, tmp_path, capsys):
    path = write_config(start, tmp_path / "bad", labeller={"module": "tblite.ase"})
    assert active_main([str(path)]) == 2
    assert "labeller needs module and class" in capsys.readouterr().err
    path.write_text(yaml.safe_dump({"model": "x", "tempratures": [300]}))
    with pytest.raises(MLANetInputError, match="unknown option"):
        ActiveConfig.load(path)


def test_farthest_points_spreads_out():
    points = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [0.0, 0.1], [5.1, 5.0], [-5.0, 5.0]])
    assert farthest_points(points, 3, 0) == [0, 4, 5]


def test_md_at_constant_pressure_moves_the_cell(start, tmp_path):
    """pressures: [1000.0] runs isotropic NPT on a periodic water box (the ethanol model knows H and O): the cell
    changes and each sample records its pressure; a molecule under pressure is refused."""
    water = ase.io.read(WATER, 0)[:48]
    water.set_cell([7.85] * 3, scale_atoms=False)
    water.wrap()
    cfg = ActiveConfig.load(write_config(start, tmp_path / "npt", pressures=[1000.0], steps=6, sample_every=3))
    samples = active.run_md(start / "start" / "best.ckpt", [water], cfg, seed=0)
    assert len(samples) == 3 and all(s.info["pressure_bar"] == 1000.0 for s in samples)
    assert samples[-1].get_volume() != pytest.approx(water.get_volume(), rel=1e-9)
    assert samples[0].arrays["mlanet_force_sigma"].shape == (48,)
    with pytest.raises(MLANetInputError, match="not periodic"):
        active.run_md(start / "start" / "best.ckpt", [ase.io.read(start / "start.extxyz")], cfg, seed=0)


@pytest.mark.lammps
@pytest.mark.parametrize("ranks", [1, 2])
def test_lammps_engine_flags_frames_in_lammps(start, tmp_path, ranks):
    """engine: lammps runs the MD in the venv's lmp: with a tiny threshold LAMMPS writes a frame at steps 0, 3 and 6
    of each run; they are labelled and trained on like ASE's, and the rerun reads the MD back."""
    from tests.lammps.conftest import require_lammps
    require_lammps(ranks)
    water = ase.io.read(WATER, 0)[:48]
    water.set_cell([7.85] * 3, scale_atoms=False)
    water.wrap()
    ase.io.write(tmp_path / "box.extxyz", water)
    out = tmp_path / "lmp"
    cfg = ActiveConfig.load(write_config(start, out, engine="lammps", lammps_ranks=ranks, iterations=1, steps=6,
                                         sample_every=3, start_file=str(tmp_path / "box.extxyz"),
                                         pressures=[None, 1000.0]))
    rows = run_active(cfg, log=lambda _: None)
    assert (rows[-1]["md_frames"], rows[-1]["flagged"], rows[-1]["labelled"]) == (6, 6, 2)
    frames = ase.io.read(out / "iter_1" / "md.extxyz", ":")
    assert [f.info["timestep"] for f in frames] == [0, 3, 6, 0, 3, 6]
    assert frames[0].get_chemical_symbols() == water.get_chemical_symbols()
    assert (frames[-1].arrays["mlanet_force_sigma"] > 0).all()
    assert len(load_model(rows[-1]["model"]).uncertainty) == 1


def test_frame_vectors_are_per_element_mean_features():
    """Two structures in one batch: each row holds the mean readout features of its H, C and O atoms (zeros for C in
    water), as computed one structure at a time."""
    from mlanet_lammps.calibration import atom_features
    from mlanet_lammps.data.batch import frame_to_graph
    from mlanet_lammps.data.io import Frame
    from tests.conftest import make_model

    model = make_model([1, 6, 8])
    frames = [ase.build.molecule("CH3CH2OH"), ase.build.molecule("H2O")]
    rows = active.frame_vectors(model, frames)
    for row, atoms in zip(rows, frames):
        features, species = atom_features(model, [frame_to_graph(Frame.from_atoms(atoms), model.cutoff, [1, 6, 8])])
        expected = [features[species == s].mean(0).numpy() if (species == s).any() else np.zeros(features.shape[1])
                    for s in range(3)]
        np.testing.assert_allclose(row, np.concatenate(expected), rtol=1e-12, atol=1e-12)
