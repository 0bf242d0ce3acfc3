"""Fine-tuning (training.init_from, training.refit_references) and isolated-atom reference energies (data.e0s):
a run starts from exactly the checkpoint's weights, keeps its architecture and data-derived settings, and says
clearly what does not fit."""

from dataclasses import asdict, replace

import pytest
import torch
import yaml

from mlanet_lammps.checkpoint import load_checkpoint, load_model
from mlanet_lammps.cli.train import main as train_main
from mlanet_lammps.data.io import read_frames, write_frames
from mlanet_lammps.errors import MLANetInputError
from mlanet_lammps.evaluate import evaluate_frames
from mlanet_lammps.train import loop
from mlanet_lammps.train.config import NOT_OPTIONS, config_from_dict, load_config
from mlanet_lammps.train.statistics import reference_energies, split_indices
from tests.conftest import FORMATE, WATER
from tests.train.test_training import TINY, config

QUIET = dict(log=lambda _: None)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """best.ckpt of a tiny float64 model trained for one epoch on 6 water frames."""
    run = tmp_path_factory.mktemp("base")
    raw = config(run, max_epochs=1)
    raw["data"].update(max_frames=6, valid_fraction=0.34)
    loop.train(config_from_dict(raw), **QUIET)
    return run / "run" / "best.ckpt"


def finetune(tmp_path, ckpt, model=None, data=None, **training) -> dict:
    """A fine-tuning config on water frames: no model section unless `model` is given."""
    raw = config(tmp_path, init_from=str(ckpt), max_epochs=1, **training)
    raw["data"].update(data or {})
    if model is None:
        del raw["model"]
    else:
        raw["model"] = model
    return raw


def shifted_water(path):
    """The first 10 water frames with every energy raised by 0.5 eV per atom."""
    write_frames(path, [replace(f, energy=f.energy + 0.5 * f.num_atoms) for f in read_frames(WATER)[:10]])
    return path


def train_frames_of(path):
    """The training frames prepare_data takes from `path` with the config of `finetune` (10 frames, 20 % valid)."""
    frames = read_frames(path)[:10]
    return [frames[i] for i in split_indices(10, 0.2, 0, str(path))[0]]


def test_fine_tuning_starts_from_the_checkpoint(base, tmp_path):
    payload = load_checkpoint(base)
    cfg = config_from_dict(finetune(tmp_path, base))
    assert asdict(cfg.model) == {k: payload["model_config"][k] for k in asdict(cfg.model)}
    data = loop.prepare_data(cfg)
    assert data.model_config.to_dict() == payload["model_config"]
    trainer = loop.Trainer(cfg, data, **QUIET)
    for model in (trainer.model, trainer.eval_model):
        state = model.state_dict()
        assert state.keys() == payload["model_state"].keys()
        for key, value in payload["model_state"].items():
            assert torch.equal(state[key], value), key
    # epoch 0 of the fine-tuning run = the checkpoint evaluated on the same (new) validation frames
    _, before = trainer.validate()
    expected, _ = evaluate_frames(load_model(base), data.valid_frames)
    for key in ("energy_rmse", "forces_rmse"):
        assert before[key] == pytest.approx(expected[key], rel=1e-10)


def test_cli_fine_tunes_with_paths_relative_to_the_config(base, tmp_path):
    (tmp_path / "base.ckpt").write_bytes(base.read_bytes())
    raw = finetune(tmp_path, "base.ckpt", model={"cutoff": TINY["cutoff"], "channels": TINY["channels"]})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(raw))
    assert load_config(tmp_path / "cfg.yaml").training.init_from == str((tmp_path / "base.ckpt").resolve())
    assert train_main([str(tmp_path / "cfg.yaml")]) == 0
    start, tuned = load_checkpoint(base), load_checkpoint(tmp_path / "run" / "last.ckpt")
    assert tuned["model_config"] == start["model_config"]
    assert tuned["config"]["training"]["init_from"] == str((tmp_path / "base.ckpt").resolve())
    assert not torch.equal(tuned["model_state"]["readout.0.weight"], start["model_state"]["readout.0.weight"])


def test_model_section_must_match_the_checkpoint(base, tmp_path):
    with pytest.raises(MLANetInputError) as err:
        config_from_dict(finetune(tmp_path, base, model={**TINY, "channels": 16, "l_max": 2}))
    message = str(err.value)
    assert "model.l_max = 2 (checkpoint: 1), model.channels = 16 (checkpoint: 8)" in message
    assert "cutoff" not in message and "drop these options" in message and "\n" not in message
    # the same options as the checkpoint, some of them or none: the checkpoint's architecture
    for model in (dict(TINY), {"num_layers": 2}, {}):
        assert config_from_dict(finetune(tmp_path, base, model=model)).model == config_from_dict(
            finetune(tmp_path, base)).model


@pytest.mark.parametrize("ckpt,message", [("missing.ckpt", "checkpoint not found"),
                                          ("other.ckpt", "not an MLANet checkpoint")])
def test_init_from_needs_a_checkpoint(tmp_path, ckpt, message):
    torch.save({"weights": 1}, tmp_path / "other.ckpt")
    raw = finetune(tmp_path, ckpt)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(MLANetInputError, match=message):
        load_config(tmp_path / "cfg.yaml")
    assert train_main([str(tmp_path / "cfg.yaml")]) == 2


def test_new_elements_are_an_error(base, tmp_path):
    cfg = config_from_dict(finetune(tmp_path, base, data={"train_file": str(FORMATE), "max_frames": 4}))
    with pytest.raises(MLANetInputError, match=r"element\(s\) C Cu absent from the training.init_from checkpoint "
                                               r"\(H O\)"):
        loop.prepare_data(cfg)


@pytest.mark.parametrize("refit", [False, True])
def test_refit_references(base, tmp_path, refit):
    """On new frames whose energies are 0.5 eV/atom higher, refit_references: true fits the reference energies anew
    (and nothing else); false keeps the checkpoint's bitwise."""
    payload = load_checkpoint(base)
    stored = payload["model_config"]
    path = shifted_water(tmp_path / "new.extxyz")
    cfg = config_from_dict(finetune(tmp_path, base, data={"train_file": str(path)}, refit_references=refit))
    data = loop.prepare_data(cfg)
    new = data.model_config.to_dict()
    for key in set(NOT_OPTIONS) - {"reference_energies"}:
        assert new[key] == stored[key], key
    state = loop.Trainer(cfg, data, **QUIET).model.state_dict()
    for key, value in payload["model_state"].items():
        if key != "energy_scale.reference_energies":
            assert torch.equal(state[key], value), key
    refs = state["energy_scale.reference_energies"]
    if not refit:
        assert new == stored and torch.equal(refs, payload["model_state"]["energy_scale.reference_energies"])
        return
    fit = reference_energies(train_frames_of(path), [1, 8])
    assert new["reference_energies"] == fit and torch.equal(refs, torch.tensor(fit, dtype=torch.float64))
    assert all(abs(a - b) > 0.1 for a, b in zip(fit, stored["reference_energies"]))


def test_refit_keeps_the_energy_of_an_element_absent_from_the_new_frames():
    frames = train_frames_of(WATER)
    refs = loop.element_reference_energies(frames, [1, 6, 8], kept=[-1.0, -2.0, -3.0])
    assert refs == [*reference_energies(frames, [1, 8])[:1], -2.0, reference_energies(frames, [1, 8])[1]]


E0S = {"H": -13.6, "O": -2041.3, "Cu": -1000.0}  # Cu: not in the data, ignored


def test_e0s_are_the_reference_energies(tmp_path):
    raw = config(tmp_path)
    raw["data"]["e0s"] = dict(E0S)
    cfg = config_from_dict(raw)
    data = loop.prepare_data(cfg)
    assert data.model_config.reference_energies == [-13.6, -2041.3]
    assert loop.Trainer(cfg, data, **QUIET).model.energy_scale.reference_energies.tolist() == [-13.6, -2041.3]
    raw["data"]["e0s"] = {"H": -13.6, "Cu": -1000.0}
    with pytest.raises(MLANetInputError, match=r"data.e0s: no energy for O \(the model's elements: H O\)"):
        loop.prepare_data(config_from_dict(raw))


def test_e0s_with_refit_references_when_fine_tuning(base, tmp_path):
    cfg = config_from_dict(finetune(tmp_path, base, data={"e0s": dict(E0S)}, refit_references=True))
    data = loop.prepare_data(cfg)
    assert data.model_config.reference_energies == [-13.6, -2041.3]
    assert data.initial_state["energy_scale.reference_energies"].tolist() == [-13.6, -2041.3]
