"""Set-ups that would give wrong physics without an error, checked once through the LAMMPS handle.

MLANet takes positions in Å and returns eV (units metal); it is told each atom type's element by pair_coeff, which
the per-type masses confirm; and it must see every pair within its cutoff, which LAMMPS withholds for bonded pairs
whose special_bonds weights are 0.
"""

from typing import Any, List, Sequence

import numpy as np
from ase.data import atomic_masses, chemical_symbols

from .errors import MLANetLammpsError


def check_units(handle: Any) -> None:
    units = handle.extract_global("units")
    if units != "metal":
        raise MLANetLammpsError(f"LAMMPS units are '{units}' but MLANet works in Å and eV: put 'units metal' "
                                "before read_data (and give the data file in metal units)")


def nearest_element(mass: float, elements: Sequence[str]) -> str:
    """The element of `elements` whose standard atomic mass is nearest `mass` (amu)."""
    return min(elements, key=lambda e: abs(atomic_masses[chemical_symbols.index(e)] - mass))


def check_masses(masses: np.ndarray, types: np.ndarray, elems: np.ndarray, model_elements: List[str],
                 type_elements: List[str]) -> None:
    """Each atom's mass must be nearer its pair_coeff element's standard mass than any other element's of the model
    (isotopes and repartitioned hydrogen masses pass; a swapped or forgotten element order does not).

    masses [n] amu, types [n] LAMMPS atom types and elems [n] (element index into type_elements, -1 for NULL) of the
    atoms to check: per-type masses indexed by type, or per-atom masses (rmass, e.g. atom_style sphere or
    fix property/atom rmass)."""
    mapped = elems >= 0
    for t in np.unique(types[mapped]):
        of_type = mapped & (types == t)
        element = type_elements[int(elems[of_type][0])]
        for mass in np.unique(masses[of_type]):
            nearest = nearest_element(float(mass), model_elements)
            if nearest != element:
                raise MLANetLammpsError(
                    f"atom type {t} has mass {mass:g} (that of {nearest}) but pair_coeff maps it to {element}: "
                    f"set mlanet_elements to one element per atom type in type order (for example \"{nearest}\" "
                    f"for type {t}) or fix the mass")


def check_special_bonds(handle: Any) -> None:
    bonded = sum(int(handle.extract_global(name)) for name in ("nbonds", "nangles", "ndihedrals"))
    weights = [float(w) for key in ("special_lj", "special_coul") for w in handle.extract_global(key)[1:4]]
    if bonded and any(w != 1.0 for w in weights):
        raise MLANetLammpsError(
            "this system has bonds but special_bonds weights other than 1 (LAMMPS then leaves bonded pairs out of "
            "the neighbour list or marks them, and MLANet must see every pair within its cutoff at full weight): "
            "put 'special_bonds lj/coul 1.0 1.0 1.0' after read_data")


def check_setup(handle: Any, types: np.ndarray, elems: np.ndarray, model_elements: List[str],
                type_elements: List[str]) -> None:
    """All set-up checks for the atoms `types`/`elems` [n] of the calling rank (local only: no collectives)."""
    check_units(handle)
    check_special_bonds(handle)
    if not len(types):
        return
    if handle.extract_setting("rmass_flag"):
        masses = np.asarray(handle.numpy.extract_atom("rmass", nelem=len(types)), dtype=np.float64)
    else:
        masses = np.asarray(handle.numpy.extract_atom("mass"), dtype=np.float64)[types]
    check_masses(masses, types, elems, model_elements, type_elements)
