"""mlanet-eval's numbers: per-structure predictions, errors per config_type and per element, predictions file."""

import json

import ase.io
import numpy as np
import pytest

from mlanet_lammps.checkpoint import save_checkpoint
from mlanet_lammps.cli.evaluate import main as eval_main
from mlanet_lammps.data.io import read_frames
from mlanet_lammps.evaluate import error_arrays, error_tables, evaluate_frames, predict_frames
from mlanet_lammps.metrics import error_metrics
from tests.conftest import WATER, make_model


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Four water frames, two of config_type 'cold', one 'hot', one without (Default), and a small float64 model."""
    frames = read_frames(WATER, index=":4")
    for frame, kind in zip(frames, ("cold", "hot", "cold", None)):
        if kind:
            frame.config_type = kind
    path = tmp_path_factory.mktemp("eval") / "typed.extxyz"
    ase.io.write(path, [f.to_atoms() for f in frames], format="extxyz")
    return path, read_frames(path), make_model([1, 8])


def test_predictions_per_frame_match_single_calls(labelled):
    _, frames, model = labelled
    batched = predict_frames(model, frames, batch_size=3)
    for frame, pred in zip(frames, batched):
        (alone,) = predict_frames(model, [frame])
        assert pred.energy == pytest.approx(alone.energy, rel=1e-12)
        np.testing.assert_allclose(pred.forces, alone.forces, atol=1e-12)
        np.testing.assert_allclose(pred.stress, alone.stress, atol=1e-12)


def test_tables_per_config_type_and_element(labelled):
    _, frames, model = labelled
    assert [f.config_type for f in frames] == ["cold", "hot", "cold", "Default"]
    preds = predict_frames(model, frames)
    tables = error_tables(frames, preds)
    assert list(tables["per_config_type"]) == ["Default", "cold", "hot"]
    cold, _ = evaluate_frames(model, [frames[0], frames[2]])
    for key in ("energy_rmse", "energy_mae", "forces_mae", "forces_rmse"):
        assert tables["per_config_type"]["cold"][key] == pytest.approx(cold[key], rel=1e-12)
    assert tables["per_config_type"]["cold"]["frames"] == 2
    hydrogen = np.concatenate([(p.forces - f.forces)[f.numbers == 1].ravel() for f, p in zip(frames, preds)])
    assert tables["per_element"]["H"]["forces_rmse"] == pytest.approx(1000 * np.sqrt(np.mean(hydrogen ** 2)))
    assert tables["per_element"]["H"]["atoms"] == 4 * 128 and tables["per_element"]["O"]["atoms"] == 4 * 64
    overall = error_metrics(error_arrays(frames, preds))
    assert overall["forces_rmse"] ** 2 == pytest.approx(
        (128 * tables["per_element"]["H"]["forces_rmse"] ** 2 + 64 * tables["per_element"]["O"]["forces_rmse"] ** 2)
        / 192, rel=1e-10)


def test_cli_writes_tables_and_predictions(labelled, tmp_path, capsys):
    path, frames, model = labelled
    save_checkpoint(tmp_path / "m.ckpt", model.config, model.state_dict())
    code = eval_main([str(tmp_path / "m.ckpt"), str(path), "--json", str(tmp_path / "e.json"), "--output",
                      str(tmp_path / "preds.extxyz"), "--prefix", "P_"])
    assert code == 0
    out = capsys.readouterr().out
    assert "cold" in out and "element" in out
    report = json.loads((tmp_path / "e.json").read_text())
    assert set(report["per_config_type"]) == {"Default", "cold", "hot"} and set(report["per_element"]) == {"H", "O"}
    written = ase.io.read(tmp_path / "preds.extxyz", ":")
    preds = predict_frames(model, frames)
    for atoms, frame, pred in zip(written, frames, preds):
        assert atoms.info["P_energy"] == pytest.approx(pred.energy, rel=1e-12)
        np.testing.assert_allclose(atoms.arrays["P_forces"], pred.forces, atol=1e-8)  # extxyz writes 8 decimals
        np.testing.assert_allclose(atoms.info["P_stress"][[0, 3, 5]], pred.stress[[0, 1, 0], [0, 2, 1]], atol=1e-12)
        assert atoms.get_potential_energy() == pytest.approx(frame.energy, rel=1e-12)  # the reference kept
        assert atoms.info.get("config_type", "Default") == frame.config_type
