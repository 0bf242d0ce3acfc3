"""Per-atom uncertainty: the heads' formulas, their calibration, exact symmetry, the checkpoint round trip, the ASE
results, mlanet-calibrate and mlanet-eval's calibration figures."""

import json

import ase.io
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from mlanet_lammps.calculator import MLANetCalculator
from mlanet_lammps.calibration import (
    ValidationErrors,
    atom_features,
    calibrated,
    fit_uncertainty,
    save_with_uncertainty,
)
from mlanet_lammps.checkpoint import load_checkpoint, load_model, save_checkpoint
from mlanet_lammps.cli.calibrate import main as calibrate_main
from mlanet_lammps.cli.evaluate import main as eval_main
from mlanet_lammps.data.batch import frame_to_graph
from mlanet_lammps.data.io import read_frames
from mlanet_lammps.errors import MLANetInputError
from mlanet_lammps.metrics import uncertainty_metrics
from mlanet_lammps.model.uncertainty import DistanceHead, LLPRHead
from tests.conftest import WATER, make_model


@pytest.fixture(scope="module")
def water():
    return read_frames(WATER)


@pytest.fixture(scope="module", params=["llpr", "distance"])
def calibrated_model(request, water):
    """A small float64 model with a head fitted on 6 water frames and calibrated on 3 others."""
    model = make_model([1, 8])
    graphs = [frame_to_graph(f, model.cutoff, [1, 8]) for f in water[:6]]
    model.attach_uncertainty(fit_uncertainty(model, graphs, water[6:9], request.param))
    return model


def test_llpr_score_is_the_posterior_variance_formula():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5))
    head = LLPRHead.fit(torch.tensor(f), torch.zeros(200, dtype=torch.long), reg=1e-2)
    cov = f.T @ f / 200
    cov += 1e-2 * np.trace(cov) / 5 * np.eye(5)
    x = rng.normal(size=(7, 5))
    expected = np.sqrt(np.einsum("ni,ij,nj->n", x, np.linalg.inv(cov), x))
    np.testing.assert_allclose(head.score(torch.tensor(x), torch.zeros(7, dtype=torch.long)).numpy(), expected,
                               rtol=1e-10)


def test_distance_score_is_the_nearest_training_atom_of_the_same_element():
    rng = np.random.default_rng(1)
    f, species = rng.normal(size=(300, 4)), rng.integers(0, 2, 300)
    head = DistanceHead.fit(torch.tensor(f), torch.tensor(species), max_references=300)
    head.rows_per_block = 3  # several blocks
    x, sx = rng.normal(size=(8, 4)), rng.integers(0, 2, 8)
    z, zx = f / f.std(axis=0, ddof=1), x / f.std(axis=0, ddof=1)
    expected = [np.min(np.linalg.norm(z[species == s] - row, axis=1)) for row, s in zip(zx, sx)]
    np.testing.assert_allclose(head.score(torch.tensor(x), torch.tensor(sx)).numpy(), expected, rtol=1e-9)


def test_scales_recover_the_spread_of_gaussian_errors():
    """Errors drawn with standard deviation 0.3 s_i (forces, per component) and 0.05 sqrt(sum s_i^2) (energies):
    the fitted scales are those factors."""
    rng = np.random.default_rng(2)
    n_frames, per = 400, 10
    features = torch.tensor(rng.uniform(0.5, 3.0, size=(n_frames * per, 1)))
    head = LLPRHead(torch.ones(1, 1, dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    s = features[:, 0].numpy()
    frame_of_atom = np.repeat(np.arange(n_frames), per)
    sum_s2 = np.bincount(frame_of_atom, weights=s ** 2)
    errors = ValidationErrors(features, torch.zeros(len(s), dtype=torch.long),
                              rng.normal(size=(len(s), 3)) * 0.3 * s[:, None],
                              rng.normal(size=n_frames) * 0.05 * np.sqrt(sum_s2), frame_of_atom)
    calibrated(head, errors)
    assert head.scale[1].item() == pytest.approx(0.3, rel=0.03)
    assert head.scale[0].item() == pytest.approx(0.05, rel=0.1)


def test_calibration_figures_tell_calibrated_from_overconfident():
    rng = np.random.default_rng(3)
    sigma = rng.uniform(0.1, 2.0, 20000)
    error = rng.normal(size=(20000, 3)) * sigma[:, None]
    good, over = uncertainty_metrics(sigma, error), uncertainty_metrics(sigma / 3, error)
    assert good["miscalibration_area"] < 0.01 and good["rms_z"] == pytest.approx(1.0, rel=0.02)
    assert over["miscalibration_area"] > 0.2 and over["rms_z"] == pytest.approx(3.0, rel=0.02)
    assert good["spearman"] > 0.5 and good["catch_rate"] > 0.3  # random flags catch 0.1
    noise = uncertainty_metrics(rng.uniform(size=20000), error)  # unrelated to the errors: random flags
    assert abs(noise["spearman"]) < 0.05 and noise["catch_rate"] == pytest.approx(0.1, abs=0.04)


def test_uncertainty_is_invariant_under_rotation_translation_permutation(calibrated_model, water):
    atoms = water[10].to_atoms()
    calc = MLANetCalculator(calibrated_model)
    calc.calculate(atoms, ["energy"])
    ref = {k: np.array(calc.results[k]) for k in ("energies_uncertainty", "forces_uncertainty", "energy_uncertainty")}
    moved = atoms.copy()
    rot = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()
    moved.set_cell(atoms.cell @ rot.T, scale_atoms=False)
    moved.positions = atoms.positions @ rot.T + [1.3, -0.4, 2.2]
    perm = np.random.default_rng(4).permutation(len(atoms))
    moved = moved[perm]
    calc.calculate(moved, ["energy"])
    # relative: this random-weight model's calibrated uncertainties are ~1e3 eV
    np.testing.assert_allclose(calc.results["energies_uncertainty"], ref["energies_uncertainty"][perm], rtol=1e-10)
    np.testing.assert_allclose(calc.results["forces_uncertainty"], ref["forces_uncertainty"][perm], rtol=1e-10)
    assert calc.results["energy_uncertainty"] == pytest.approx(float(ref["energy_uncertainty"]), rel=1e-10)
    assert (ref["forces_uncertainty"] > 0).all()


def test_ase_results_and_switch(calibrated_model, water):
    atoms = water[11].to_atoms()
    atoms.calc = MLANetCalculator(calibrated_model)
    u_e = atoms.calc.get_property("energies_uncertainty", atoms)
    assert u_e.shape == (len(atoms),)
    assert atoms.calc.get_property("forces_uncertainty", atoms).shape == (len(atoms),)
    assert atoms.calc.get_property("energy_uncertainty", atoms) == pytest.approx(np.sqrt(np.sum(u_e ** 2)))
    off = MLANetCalculator(calibrated_model, uncertainty=False)
    off.calculate(atoms, ["energy"])
    assert "forces_uncertainty" not in off.results
    np.testing.assert_allclose(off.results["forces"], atoms.get_forces(), atol=1e-12)
    with pytest.raises(MLANetInputError, match="no fitted uncertainty"):
        MLANetCalculator(make_model([1, 8]), uncertainty=True)


def test_checkpoint_round_trip_and_fine_tuning_state(calibrated_model, tmp_path, water):
    save_checkpoint(tmp_path / "plain.ckpt", calibrated_model.config, calibrated_model.state_dict())
    assert "uncertainty.0.scale" not in calibrated_model.state_dict()  # the head is not part of the weights
    head = calibrated_model.uncertainty[0]
    save_with_uncertainty(tmp_path / "plain.ckpt", tmp_path / "cal.ckpt", head)
    assert load_checkpoint(tmp_path / "plain.ckpt").get("uncertainty") is None
    loaded = load_model(tmp_path / "cal.ckpt")
    assert repr(loaded.uncertainty[0]) == repr(head)
    graphs = [frame_to_graph(water[12], loaded.cutoff, [1, 8])]
    features, species = atom_features(loaded, graphs)
    torch.testing.assert_close(loaded.atom_uncertainty(features, species),
                               head(*atom_features(calibrated_model, graphs)), rtol=1e-12, atol=1e-12)


def test_calibrate_and_eval_cli(tmp_path, water, capsys):
    model = make_model([1, 8])
    save_checkpoint(tmp_path / "m.ckpt", model.config, model.state_dict())
    assert eval_main([str(tmp_path / "m.ckpt"), str(WATER), "--uncertainty-plot", str(tmp_path / "u.png")]) == 2
    assert "has no fitted uncertainty" in capsys.readouterr().err
    ase.io.write(tmp_path / "train.extxyz", [f.to_atoms() for f in water[:6]])
    ase.io.write(tmp_path / "valid.extxyz", [f.to_atoms() for f in water[6:9]])
    assert calibrate_main([str(tmp_path / "m.ckpt"), "--train", str(tmp_path / "train.extxyz"), "--valid",
                           str(tmp_path / "valid.extxyz"), "-o", str(tmp_path / "c.ckpt")]) == 0
    assert "LLPRHead" in capsys.readouterr().out
    out = tmp_path / "eval.json"
    assert eval_main([str(tmp_path / "c.ckpt"), str(WATER), "--json", str(out), "--uncertainty-plot",
                      str(tmp_path / "u.png"), "--output", str(tmp_path / "pred.extxyz")]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())["uncertainty"]
    assert f"{report['forces']['spearman']:.2f}" in printed and report["forces"]["count"] == 40 * 192
    assert (tmp_path / "u.png").read_bytes()[:4] == b"\x89PNG"
    written = ase.io.read(tmp_path / "pred.extxyz", ":")
    assert written[0].arrays["MLANet_forces_uncertainty"].shape == (192,)
    assert written[0].info["MLANet_energy_uncertainty"] > 0
    assert written[0].info["MLANet_max_force_uncertainty"] == pytest.approx(
        written[0].arrays["MLANet_forces_uncertainty"].max(), abs=1e-8)  # extended XYZ: 8 decimals per atom


def test_calibration_needs_energies_and_forces(water):
    import dataclasses
    model = make_model([1, 8])
    graphs = [frame_to_graph(water[0], model.cutoff, [1, 8])]
    no_forces = [dataclasses.replace(f, forces=None) for f in water[6:8]]
    with pytest.raises(MLANetInputError, match="needs frames with reference energies and forces"):
        fit_uncertainty(model, graphs, no_forces)
