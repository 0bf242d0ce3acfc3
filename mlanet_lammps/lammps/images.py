"""Ghost atoms that are periodic images of a rank's own atoms, found from LAMMPS atom IDs.

LAMMPS' ML-IAP hands a unified model pair vectors and indices but no atom IDs. A ghost atom that is a periodic image
of one of the rank's local atoms (every ghost on 1 rank; those across periodic sides a rank spans on N ranks) has
exactly that atom's features, since MLANet is translation invariant. So the pairs centred on such a ghost need not
be evaluated, and pairs pointing to it can take their sender features from its local owner: layer k then runs on
local atoms (and ghosts owned by other ranks) only, instead of on every atom within (num_layers - k) x r_cut.

The exported snippet hands the wrapper its LAMMPS instance through LAMMPS' `python` command (`SELF` is a pointer to
the instance) right after its pair_style line; the wrapper then reads atom IDs with the `lammps` Python module. A
model connected to a pair style again (a new instance reusing it) drops its handle until the next attach. Without a
handle (an input that does not include the snippet) or with MLANET_GHOST_IMAGES=0 nothing is folded: the results
are the same, only slower.
"""

import weakref
from typing import Any, Optional, Tuple

import numpy as np

# models connected to a pair style since the last `python mlanet_attach invoke` (the snippet runs it right after
# its pair_style line); attach hands them the calling instance
_waiting: "weakref.WeakSet[Any]" = weakref.WeakSet()


def expect_handle(model: Any) -> None:
    """Called when LAMMPS connects `model` (an MLANetMLIAP) to a pair style: the next attach() is for it."""
    _waiting.add(model)


def attach(ptr: Any) -> None:
    """LAMMPS `python mlanet_attach input 1 SELF format p exists` target: give the models waiting for it a handle on
    the calling instance (their `lammps_handle`)."""
    try:
        from lammps import lammps
    except ImportError:  # LAMMPS built without its Python module (make install-python): results stay the same
        print("mlanet_lammps: the lammps Python module is not importable, so ghost images are recomputed (same "
              "results, slower); install it with LAMMPS' make install-python", flush=True)
        return
    handle = lammps(ptr=ptr)
    for model in list(_waiting):
        model.lammps_handle = handle
    _waiting.clear()


def atom_ids(handle: Any, nlocal: int, ntotal: int) -> Optional[np.ndarray]:
    """Atom IDs [ntotal] int64 of the local and ghost atoms of the calling rank. `handle`: the `lammps` object of
    the calling instance. None when atom IDs are off (atom_modify id no) or the instance does not hold these
    nlocal/ntotal atoms (it is not the one calling)."""
    if handle.extract_setting("nlocal") != nlocal or handle.extract_setting("nall") != ntotal:
        return None
    if ntotal == 0:
        return np.zeros(0, dtype=np.int64)
    tag = np.array(handle.numpy.extract_atom("id", nelem=ntotal), dtype=np.int64)
    return None if tag.min() <= 0 else tag


def id_positions(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Position in `ids` [N] (unique atom IDs) of each of the `wanted` [M] IDs, -1 where absent; [M] int64."""
    if len(ids) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    where = np.minimum(np.searchsorted(ids[order], wanted), len(ids) - 1)
    return np.where(ids[order][where] == wanted, order[where], -1).astype(np.int64)


def ghost_owners(tag: np.ndarray, nlocal: int) -> np.ndarray:
    """owner [ntotal] int64: for a ghost atom whose ID (tag [ntotal], from atom_ids) is one of this rank's local
    atoms, that local atom's index; for every other atom, its own index."""
    owner = np.arange(len(tag), dtype=np.int64)
    pos = id_positions(tag[:nlocal], tag[nlocal:])
    owner[nlocal:] = np.where(pos >= 0, pos, owner[nlocal:])
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
