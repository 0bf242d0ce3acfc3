"""Neighbour list with periodic boundary conditions (vesin): triclinic cells, cells smaller than the cutoff
(several images of one atom), mixed pbc (slabs) and isolated molecules."""

from typing import Tuple

import numpy as np
import vesin


def build_graph(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float, mirrored: bool = False
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All directed pairs (i, j, shift) with |r_j - r_i + shift . cell| < cutoff, i != j or shift != 0.

    Args:
        positions: [N, 3] Cartesian positions in Å.
        cell: [3, 3] cell vectors as rows in Å (ignored along non-periodic directions).
        pbc: [3] periodic flags.
        cutoff: cutoff radius in Å.
        mirrored: order the pairs as [each pair once | the same pairs reversed], so that edge e + E/2 is edge e
            backwards with edge_vec negated exactly (model/compiled.py then evaluates pair terms once per pair).
    Returns:
        edge_index [2, E] int64 (center i, neighbour j), shifts [E, 3] float (integer cell shifts),
        edge_vec [E, 3] float64 r_j - r_i + shift . cell in Å.
    """
    pbc = np.asarray(pbc, dtype=bool)
    cell = np.asarray(cell, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    if not pbc.any():
        cell = np.zeros((3, 3))
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=not mirrored)
    i, j, s, d = nl.compute(positions, cell, [bool(p) for p in pbc], quantities="ijSD")
    if mirrored:
        i, j, s, d = np.concatenate([i, j]), np.concatenate([j, i]), np.concatenate([s, -s]), np.concatenate([d, -d])
    edge_index = np.stack([i, j]).astype(np.int64)
    return edge_index, s.astype(np.float64), d.astype(np.float64)
