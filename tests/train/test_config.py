"""The mlanet-train configuration (mlanet_lammps/train/config.py): one-line errors for bad values and keys."""

import pytest
import yaml

from mlanet_lammps.cli.train import main as train_main
from mlanet_lammps.errors import MLANetInputError
from mlanet_lammps.train.config import load_config
from tests.conftest import WATER


def config(tmp_path) -> dict:
    return {"data": {"train_file": str(WATER), "max_frames": 10, "valid_fraction": 0.2},
            "model": {"cutoff": 4.0, "channels": 8},
            "training": {"output_dir": str(tmp_path / "run"), "max_epochs": 1, "progress": False}}


@pytest.mark.parametrize("change,message", [
    ({"model": {"cutoff": 25.0}}, "model.cutoff = 25.0"),
    ({"model": {"chanels": 8}}, "unknown key(s) model.chanels"),
    ({"model": {"atomic_numbers": [1, 8]}}, "unknown key(s) model.atomic_numbers"),
    ({"model": {"channels": 8.5}}, "model.channels must be int"),
    ({"training": {"lr_schedule": "cyclic"}}, "lr_schedule = 'cyclic' unknown"),
    ({"model": {"density_l_max": -2}}, "model.density_l_max = -2"),
    ({"training": {"max_time": "ten minutes"}}, "cannot read duration"),
    ({"training": {"dtype": "float16"}}, "training.dtype = 'float16' unknown"),
    ({"extra": {}}, "unknown section(s) extra"),
])
def test_config_errors(tmp_path, change, message):
    raw = config(tmp_path)
    for section, values in change.items():
        raw.setdefault(section, {}).update(values)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(MLANetInputError) as err:
        load_config(path)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert train_main([str(path)]) == 2

