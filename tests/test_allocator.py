"""The glibc allocator setting (mlanet_lammps/allocator.py) is the one copy: the shell scripts read it from there."""

import subprocess
import sys

from mlanet_lammps.allocator import TUNABLES
from tests.conftest import ROOT


def test_allocator_script_prints_the_setting():
    out = subprocess.run([sys.executable, "-I", str(ROOT / "mlanet_lammps" / "allocator.py")], capture_output=True,
                         text=True, check=True).stdout
    assert out == TUNABLES + "\n" and "mmap_threshold" in TUNABLES


def test_shell_scripts_hold_no_copy():
    for script in ("run.sh", "cmake/build_lammps.sh"):
        text = (ROOT / script).read_text()
        assert "mmap_threshold=" not in text and "mlanet_lammps/allocator.py" in text, script
