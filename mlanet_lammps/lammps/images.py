"""Ghost atoms that are periodic images of a rank's own atoms, found from LAMMPS atom IDs.

LAMMPS' ML-IAP hands a unified model pair vectors and indices but no atom IDs. A ghost atom that is a periodic image
of one of the rank's local atoms (every ghost on 1 rank; those across periodic sides a rank spans on N ranks) has
exactly that atom's features, since MLANet is translation invariant. So the pairs centred on such a ghost need not
be evaluated, and pairs pointing to it can take their sender features from its local owner: layer k then runs on
local atoms (and ghosts owned by other ranks) only, instead of on every atom within (num_layers - k) x r_cut.

The exported snippet hands the wrapper its LAMMPS instance through LAMMPS' `python` command (`SELF` is a pointer to
the instance); the wrapper then reads atom IDs with the `lammps` Python module. Without it (an input that does not
include the snippet, or MLANET_GHOST_IMAGES=0) nothing is folded and results are the same, only slower.
"""

from typing import Any, Optional, Tuple

import numpy as np

_lammps: Optional[Any] = None  # the `lammps` handle of the instance whose input ran `python mlanet_attach invoke`


def attach(ptr: Any) -> None:
    """LAMMPS `python mlanet_attach input 1 SELF format p exists` target: keep a handle on the calling instance."""
    global _lammps
    from lammps import lammps
    _lammps = lammps(ptr=ptr)


def ghost_owners(nlocal: int, ntotal: int) -> Optional[np.ndarray]:
    """owner [ntotal] int64: for a ghost atom whose ID is one of this rank's local atoms, that local atom's index;
    for every other atom, its own index. None when no LAMMPS instance is attached, atom IDs are off, or the attached
    instance does not hold these nlocal/ntotal atoms (it is not the one calling)."""
    if _lammps is None:
        return None
    if _lammps.extract_setting("nlocal") != nlocal or _lammps.extract_setting("nall") != ntotal:
        return None
    owner = np.arange(ntotal, dtype=np.int64)
    if nlocal == 0 or ntotal == nlocal:
        return owner
    tag = np.array(_lammps.numpy.extract_atom("id", nelem=ntotal), dtype=np.int64)
    order = np.argsort(tag[:nlocal], kind="stable")
    sorted_tags = tag[:nlocal][order]
    if sorted_tags[0] <= 0 or np.any(sorted_tags[1:] == sorted_tags[:-1]):  # atom IDs off (atom_modify id no)
        return None
    ghost_tags = tag[nlocal:]
    where = np.minimum(np.searchsorted(sorted_tags, ghost_tags), nlocal - 1)
    own = sorted_tags[where] == ghost_tags
    owner[nlocal:][own] = order[where[own]]
    return owner


def fold_images(pair_i: np.ndarray, pair_j: np.ndarray, owner: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The pairs to evaluate once image ghosts are folded onto their owners.

    pair_i/pair_j [P]; owner [ntotal] from ghost_owners. Returns (kept [K] indices into the P pairs: those not centred
    on an image ghost; pair_j of the kept pairs with image ghosts replaced by their owners [K]). The kept pairs keep
    their rij (the vector to the image), so the fij of a kept pair is dE/d rij of that pair, and the dropped pairs
    have fij = 0: LAMMPS' forces and virial (sum of rij x fij) are unchanged.
    """
    kept = np.flatnonzero(owner[pair_i] == pair_i)
    return kept, owner[pair_j[kept]]
