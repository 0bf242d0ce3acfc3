"""The commands' --version and --help (every option's default shown)."""

import pytest

from mlanet_lammps import __version__
from mlanet_lammps.cli import evaluate, export, train


@pytest.mark.parametrize("main,prog", [(train.main, "mlanet-train"), (evaluate.main, "mlanet-eval"),
                                       (export.main, "mlanet-export")])
def test_version_and_defaults_in_help(main, prog, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"{prog} (mlanet_lammps {__version__})"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith(f"usage: {prog}")
    expected = {"mlanet-train": [], "mlanet-eval": ["(default: 8)", "(default: float64)", "(default: cpu)"],
                "mlanet-export": ["(default: auto)", "(default: float64)"]}[prog]
    for default in expected:
        assert default in text
