"""The mlanet-train configuration (mlanet_lammps/train/config.py): one-line errors for bad values and keys, and the
model options derived from ModelConfig (one source of truth for the hyperparameters and their defaults)."""

from dataclasses import MISSING, fields

import pytest
import yaml

from mlanet_lammps.cli.train import main as train_main
from mlanet_lammps.errors import MLANetInputError
from mlanet_lammps.model.mlanet import ModelConfig
from mlanet_lammps.train.config import MODEL_HELP, NOT_OPTIONS, PRESETS, ModelOptions, default_config_yaml, load_config
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
    ({"training": {"device": "gpu"}}, "training.device = 'gpu' unknown"),
    ({"extra": {}}, "unknown section(s) extra"),
    ({"data": {"e0s": [-13.6]}}, "data.e0s must be a mapping of element symbols to energies"),
    ({"data": {"e0s": {"H": -13.6, "Hx": 1.0, "X": 0.0}}}, "data.e0s names unknown element(s) 'Hx', 'X'"),
    ({"data": {"e0s": {"H": "low", "O": True}}}, "data.e0s needs finite numbers, got H: 'low', O: True"),
    ({"training": {"refit_references": True}}, "training.refit_references is set without init_from"),
    ({"data": {"e0s": {"H": -13.6}}, "training": {"init_from": "run/best.ckpt"}},
     "data.e0s replaces the reference energies, which training.init_from keeps"),
    ({"training": {"init_from": "run/best.ckpt"}}, "checkpoint not found"),
    ({"model": {"logit_cap": 0.0}}, "model.logit_cap = 0.0 must be > 0"),
    ({"training": {"early_stopping_patience": -1}}, "training.early_stopping_patience = -1 must be >= 0"),
    ({"training": {"lr_factor": 1.5}}, "training.lr_factor = 1.5 must be in (0, 1)"),
    ({"training": {"lr": float("nan")}}, "training.lr = nan must be > 0"),
    ({"training": {"num_threads": 0}}, "training.num_threads = 0 must be >= 1"),
    ({"data": {"max_frames": 0}}, "data.max_frames = 0 must be >= 1"),
    ({"model": {"att_channels": 0}}, "model.att_channels = 0 must be >= 1"),
    ({"data": {"num_workers": -1}}, "data.num_workers = -1 must be >= 0"),
    ({"data": {"lazy": False, "cache_dir": "graphs"}}, "data.num_workers and data.cache_dir need data.lazy: true"),
    ({"model": {"preset": "precise"}}, "model.preset = 'precise' unknown"),
    ({"model": {"preset": ["fast"]}}, "model.preset = ['fast'] unknown"),
    ({"training": {"stage_two": 1.0}}, "training.stage_two = 1.0 not in [0, 1)"),
    ({"training": {"stage_two_energy_weight": -1.0}}, "stage-two loss weights must be >= 0"),
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


def test_model_options_are_the_model_config():
    """Every ModelConfig field is a model option with a help text and ModelConfig's own default and type, or is
    listed (with its reason) as set from the training data. A field added to ModelConfig without either fails here."""
    model_fields = {f.name: f for f in fields(ModelConfig)}
    options = {f.name: f for f in fields(ModelOptions)}
    missing = set(model_fields) - set(options) - set(NOT_OPTIONS)
    assert not missing, f"ModelConfig fields without a model option or help text in train/config.py: {sorted(missing)}"
    assert not set(options) & set(NOT_OPTIONS)
    assert set(options) <= set(model_fields) and set(NOT_OPTIONS) <= set(model_fields)
    assert set(MODEL_HELP) == set(options)
    for name, option in options.items():
        assert option.metadata["doc"] == MODEL_HELP[name] and option.metadata["doc"].strip()
        assert model_fields[name].default is not MISSING
        assert option.default == model_fields[name].default and type(option.default) is type(model_fields[name].default)
    assert ModelOptions().to_model_config([1, 8]) == ModelConfig(atomic_numbers=[1, 8])


def test_every_numeric_option_has_a_range():
    """A numeric option added without an entry in OPTION_RANGES (or its own check) fails here."""
    from mlanet_lammps.train.config import OPTION_RANGES, SECTIONS
    own_checks = {"model.cutoff", "model.density_l_max", "training.seed", "training.energy_weight",
                  "training.forces_weight", "training.stress_weight", "training.ema_decay", "data.valid_fraction",
                  "training.stage_two", "training.stage_two_energy_weight", "training.stage_two_forces_weight"}
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            numeric = f.type in (int, float, "int", "float") or "Optional[int]" in str(f.type)
            if numeric and f"{section}.{f.name}" not in own_checks:
                assert f.name in OPTION_RANGES[section], f"{section}.{f.name} has no range"


def test_command_line_overrides(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path)))
    cfg = load_config(path, ["training.max_epochs=200", "model.channels=16", "data.e0s={H: -13.6, O: -2041.3}",
                             "training.max_time=2h"])
    assert (cfg.training.max_epochs, cfg.model.channels, cfg.training.max_time) == (200, 16, "2h")
    assert cfg.data.e0s == {"H": -13.6, "O": -2041.3}
    assert load_config(path).training.max_epochs == 1  # the file itself is unchanged
    for bad, message in (("max_epochs=3", "not of the form section.key=value"),
                         ("training.max_epoch=3", "unknown key(s) training.max_epoch"),
                         ("training.lr=-1", "training.lr = -1.0 must be > 0")):
        with pytest.raises(MLANetInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_config(path, [bad])
    assert train_main([str(path), "training.lr=-1"]) == 2


def test_presets(tmp_path):
    """`model.preset` starts the model section from the preset's values; options written next to it win; the fast
    preset is the defaults; every preset value is a model option with a value other than its default."""
    path = tmp_path / "cfg.yaml"
    raw = config(tmp_path)
    raw["model"] = {"preset": "accurate", "channels": 8}
    path.write_text(yaml.safe_dump(raw))
    model = load_config(path).model
    assert PRESETS["accurate"] and model.channels == 8
    for name, value in PRESETS["accurate"].items():
        assert getattr(model, name) == value != getattr(ModelOptions(), name)
    raw["model"] = {"preset": "accurate", "l_max": 1}  # a written option wins over the preset's own value
    path.write_text(yaml.safe_dump(raw))
    assert (load_config(path).model.l_max, load_config(path).model.num_layers) == (1, PRESETS["accurate"]["num_layers"])
    raw["model"] = {"preset": "fast"}
    path.write_text(yaml.safe_dump(raw))
    assert load_config(path).model == ModelOptions()
    assert load_config(path, ["model.preset=accurate"]).model.l_max == PRESETS["accurate"]["l_max"]
    assert "preset: fast" in default_config_yaml()
