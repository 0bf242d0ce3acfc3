"""Checkpoints (mlanet_lammps/checkpoint.py): plain data loaded with weights_only; corrupt, foreign, future-version
and pickle-needing files are refused with one clear line; older versions load as what they were."""

import ase
import pytest
import torch

from mlanet_lammps.calculator import MLANetCalculator
from mlanet_lammps.checkpoint import FORMAT, VERSION, check_plain, load_checkpoint, load_model, save_checkpoint
from mlanet_lammps.cli.evaluate import main as eval_main
from mlanet_lammps.errors import MLANetInputError
from tests.conftest import WATER, make_model


class Custom:
    """Not plain data: unpickling it would import and construct this class."""


def test_corrupt_and_foreign_checkpoints(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(MLANetInputError, match="corrupt or unreadable checkpoint"):
        load_model(bad)
    torch.save({"format": "mlanet_lammps.checkpoint", "version": 999}, tmp_path / "future.ckpt")
    with pytest.raises(MLANetInputError, match="format version 999"):
        load_model(tmp_path / "future.ckpt")
    torch.save({"weights": 1}, tmp_path / "other.ckpt")
    with pytest.raises(MLANetInputError, match="not an MLANet checkpoint"):
        load_model(tmp_path / "other.ckpt")
    assert eval_main([str(bad), str(WATER)]) == 2


def test_checkpoint_needing_pickle_is_refused(tmp_path, capsys):
    """A file that only loads with weights_only=False (here: a custom class instance) is never unpickled."""
    model = make_model([1, 8])
    payload = {"format": FORMAT, "version": VERSION, "model_config": model.config.to_dict(),
               "model_state": model.state_dict(), "extra": Custom()}
    path = tmp_path / "pickled.ckpt"
    torch.save(payload, path)
    with pytest.raises(MLANetInputError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "\n" not in message and "needs pickle" in message and "Custom" in message
    assert "retrain with this mlanet_lammps version" in message and "re-save" in message
    assert eval_main([str(path), str(WATER)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_saved_checkpoint_loads_weights_only(tmp_path):
    model = make_model([1, 8])
    save_checkpoint(tmp_path / "m.ckpt", model.config, model.state_dict(), metrics={"forces_rmse": 1.5},
                    history=[{"epoch": 1, "lr": 0.01}], betas=(0.9, 0.999), note=None)
    raw = torch.load(tmp_path / "m.ckpt", weights_only=True)
    assert raw["betas"] == (0.9, 0.999) and raw["metrics"] == {"forces_rmse": 1.5}
    loaded = load_model(tmp_path / "m.ckpt")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_save_refuses_what_needs_pickle(tmp_path):
    model = make_model([1, 8])
    with pytest.raises(TypeError, match=r"checkpoint\['extra'\]\['obj'\] is a .*Custom"):
        save_checkpoint(tmp_path / "m.ckpt", model.config, model.state_dict(), extra={"obj": Custom()})
    assert not (tmp_path / "m.ckpt").exists()
    check_plain({"a": [1, 2.0, "x", None, True, (torch.zeros(2),)], 3: {"b": torch.ones(1)}})
    with pytest.raises(TypeError, match="key"):
        check_plain({(1, 2): 0})
    with pytest.raises(TypeError, match="torch.dtype"):
        check_plain({"dtype": torch.float32})


def energy(model, atoms) -> float:
    atoms = atoms.copy()
    atoms.calc = MLANetCalculator(model)
    return atoms.get_potential_energy()


def test_version_2_checkpoint_loads_without_prior(tmp_path):
    """Checkpoints written before the repulsion prior existed keep their meaning: they load with repulsion 'none'."""
    model = make_model([1, 8, 29], repulsion="none")
    save_checkpoint(tmp_path / "new.ckpt", model.config, model.state_dict())
    payload = torch.load(tmp_path / "new.ckpt", weights_only=True)
    payload["version"] = 2
    del payload["model_config"]["repulsion"]
    torch.save(payload, tmp_path / "v2.ckpt")
    loaded = load_model(tmp_path / "v2.ckpt")
    assert loaded.config.repulsion == "none" and len(loaded.priors) == 0
    atoms = ase.Atoms(numbers=[1, 1], positions=[[0.0, 0.0, 0.0], [0.24, 0.32, 0.0]])  # 0.4 Å: the prior would act
    assert energy(loaded, atoms) == pytest.approx(energy(model, atoms), rel=1e-12)


def test_version_3_checkpoint_loads_without_density(tmp_path, water_atoms):
    """Checkpoints written before the density block existed keep their meaning: they load with density_l_max -1."""
    model = make_model([1, 8], density_l_max=-1)
    save_checkpoint(tmp_path / "new.ckpt", model.config, model.state_dict())
    payload = torch.load(tmp_path / "new.ckpt", weights_only=True)
    payload["version"] = 3
    del payload["model_config"]["density_l_max"], payload["model_config"]["density_channels"]
    torch.save(payload, tmp_path / "v3.ckpt")
    loaded = load_model(tmp_path / "v3.ckpt")
    assert loaded.config.density_l_max == -1 and len(loaded.density) == 0
    assert energy(loaded, water_atoms) == pytest.approx(energy(model, water_atoms), rel=1e-12)
