"""The README's configuration reference is the current `mlanet-train --print-config` output."""

from mlanet_lammps.train.config import default_config_yaml, load_config
from tests.conftest import ROOT


def test_readme_config_reference_is_current():
    readme = (ROOT / "README.md").read_text()
    assert default_config_yaml().strip() in readme


def test_example_configs_load():
    for path in (ROOT / "examples").glob("*/*.yaml"):
        cfg = load_config(path)
        assert (ROOT / "examples").resolve() in __import__("pathlib").Path(cfg.data.train_file).parents
