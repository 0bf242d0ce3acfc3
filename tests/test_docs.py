"""The documented configuration reference is the current `mlanet-train --print-config` output, and the example
configs load."""

from pathlib import Path

from mlanet_lammps.active import ActiveConfig
from mlanet_lammps.train.config import default_config_yaml, load_config
from tests.conftest import ROOT


def test_config_reference_is_current():
    reference = (ROOT / "docs" / "configuration.md").read_text()
    assert default_config_yaml().strip() in reference, (
        "docs/configuration.md is out of date: paste the output of `mlanet-train --print-config` into it")


def test_example_configs_load():
    """Every example config loads: mlanet-active's (active.yaml, its data files bundled) and mlanet-train's."""
    paths = sorted((ROOT / "examples").glob("*/*.yaml"))
    assert paths, "no example configs found under examples/*/*.yaml"
    for path in paths:
        if path.name == "active.yaml":
            active = ActiveConfig.load(path)
            assert all(Path(p).is_file() for p in (active.train_file, active.test_file, active.start_file))
            continue
        cfg = load_config(path)
        assert (ROOT / "examples").resolve() in Path(cfg.data.train_file).parents
