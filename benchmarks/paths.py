"""Paths the benchmark scripts share: the repository, the shared DFT data, the water frames and the venv's lmp."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WATER = DATA / "deepmd_water_example" / "water_192atoms_400frames.extxyz"  # 192-atom liquid water, DFT (see SOURCES)
EXAMPLE_WATER = ROOT / "examples" / "water" / "water_40frames.extxyz"  # 40 of those frames, bundled in the repo
LMP = Path(sys.prefix) / "bin" / "lmp"  # built into the venv by `bash run.sh setup`
