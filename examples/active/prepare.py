"""Make the active-learning demo's labelled frames: positions of bundled water frames (examples/water, DeePMD
example data, 192 atoms) relabelled with GFN1-xTB (tblite), so that the start model, the labeller and the test
set share one level of theory. Writes train.extxyz (6 frames), test.extxyz (10 frames) and start.extxyz (1
unlabelled structure); about 2 minutes on 2 cores. The files are bundled; rerun only to change them.

    .venv/bin/python examples/active/prepare.py
"""

from pathlib import Path

import ase.io
from tblite.ase import TBLite

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "water" / "water_40frames.extxyz"


def labelled(indices):
    frames = []
    for i in indices:
        atoms = ase.io.read(SOURCE, i)
        atoms.calc = TBLite(method="GFN1-xTB", verbosity=0)
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = None
        atoms.info = {"energy": float(energy), "config_type": "gfn1_xtb", "source_frame": i}
        atoms.arrays = {k: v for k, v in atoms.arrays.items() if k in ("numbers", "positions")}
        atoms.arrays["forces"] = forces
        frames.append(atoms)
        print(f"frame {i}: {energy:.3f} eV", flush=True)
    return frames


if __name__ == "__main__":
    ase.io.write(HERE / "train.extxyz", labelled(range(0, 6)), format="extxyz")
    ase.io.write(HERE / "test.extxyz", labelled(range(20, 40, 2)), format="extxyz")
    start = ase.io.read(SOURCE, 10)
    ase.io.write(HERE / "start.extxyz", start.__class__(start.numbers, start.positions, cell=start.cell, pbc=True))
