"""The documented configuration reference is the current `mlanet-train --print-config` output, and the example
configs load."""

from pathlib import Path

from mlanet_lammps.train.config import default_config_yaml, load_config
from tests.conftest import ROOT


def test_config_reference_is_current():
    reference = (ROOT / "docs" / "configuration.md").read_text()
    assert default_config_yaml().strip() in reference, (
        "docs/configuration.md is out of date: paste the output of `mlanet-train --print-config` into it")


def test_example_configs_load():
    paths = sorted((ROOT / "examples").glob("*/*.yaml"))
    assert paths, "no example configs found under examples/*/*.yaml"
    for path in paths:
        cfg = load_config(path)
        assert (ROOT / "examples").resolve() in Path(cfg.data.train_file).parents
