"""The model's element data (mlanet_lammps/model/elements.py) is ASE's, and the model package imports no ASE."""

import ast
from pathlib import Path

import numpy as np
from ase.data import covalent_radii

import mlanet_lammps.model
from mlanet_lammps.model.elements import COVALENT_RADII


def test_covalent_radii_are_ases():
    assert len(COVALENT_RADII) == len(covalent_radii)
    np.testing.assert_array_equal(np.array(COVALENT_RADII), covalent_radii)


def test_model_imports_no_ase():
    for path in sorted(Path(mlanet_lammps.model.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            assert not any(n == "ase" or n.startswith("ase.") for n in names), f"{path.name} imports {names}"
