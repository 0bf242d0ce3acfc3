"""Whether a rank's ghost atoms reach far enough, read off LAMMPS' pair list alone.

LAMMPS does not tell a pair style its communication cutoff. A message-passing model needs every atom within
(num_layers - 1) hops of a local atom to have its complete neighbourhood, so ghost atoms must reach
num_layers x r_cut beyond the local atoms. Positions are rebuilt from the pair vectors (x_j = x_i + r_ij along a
breadth-first tree, one frame per connected part), and the ghost shell's depth on each side is measured from them.
"""

from typing import Optional, Tuple

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order


def positions_from_pairs(rij: np.ndarray, pair_i: np.ndarray, pair_j: np.ndarray, ntotal: int,
                         roots: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Positions [ntotal,3] (Å) of the atoms connected to `roots`, and the root [ntotal] each was reached from (the
    frame it is in; -1 and NaN positions for atoms not reached). rij [P,3] = x_j - x_i for the pairs i -> j."""
    graph = csr_matrix((np.arange(1, len(pair_i) + 1), (pair_i, pair_j)), shape=(ntotal, ntotal))
    pos = np.full((ntotal, 3), np.nan)
    frame = np.full(ntotal, -1)
    for root in roots:
        if frame[root] >= 0:
            continue
        order, pred = breadth_first_order(graph, root, directed=True, return_predecessors=True)
        frame[order] = root
        pos[root] = 0.0
        nodes = order[1:]
        if nodes.size == 0:  # an atom without neighbours
            continue
        found = graph[pred[nodes], nodes]
        edges = np.asarray(found.toarray() if hasattr(found, "toarray") else found).ravel() - 1
        for node, parent, edge in zip(nodes.tolist(), pred[nodes].tolist(), edges.tolist()):
            pos[node] = pos[parent] + rij[edge]
    return pos, frame


def ghost_extents(rij: np.ndarray, pair_i: np.ndarray, pair_j: np.ndarray, nlocal: int, ntotal: int) -> np.ndarray:
    """How far ghost atoms lie beyond the local atoms, [F, 6] in Å along -x, +x, -y, +y, -z, +z, for each of the F
    connected parts that hold local atoms and ghosts (0 on a side with no ghost beyond the local atoms)."""
    pos, frame = positions_from_pairs(rij, pair_i, pair_j, ntotal, np.arange(nlocal))
    rows = []
    for root in np.unique(frame[:nlocal]):
        members = np.flatnonzero(frame == root)
        local, ghost = pos[members[members < nlocal]], pos[members[members >= nlocal]]
        if len(ghost):
            below = local.min(0) - ghost.min(0)
            above = ghost.max(0) - local.max(0)
            rows.append(np.clip(np.stack([below, above], 1).ravel(), 0.0, None))
    return np.array(rows).reshape(-1, 6)


SLACK = 1.5  # Å: a dense shell reaches to within about one atomic spacing of the comm cutoff


def short_ghost_shell(rij: np.ndarray, pair_i: np.ndarray, pair_j: np.ndarray, nlocal: int, ntotal: int,
                      depth: int, cutoff: float, comm_cutoff: float) -> Optional[str]:
    """The one-line error if the ghosts stop short of what `depth` message-passing layers need, else None.

    rij [P,3] Å and pair_i/pair_j [P] as LAMMPS passes them; cutoff r_cut and comm_cutoff (the value to advise) in Å.
    Only sides where ghosts lie more than r_cut/2 beyond the local atoms count (not vacuum), and the deepest of them
    must reach depth x r_cut - SLACK. A missing comm_modify cutoff (LAMMPS then uses r_cut + skin) makes every such
    side short, so it is caught; a structure that merely ends (an adsorbate over a neighbouring rank's slab) leaves
    the other sides deep and is not reported. A shell short by less than SLACK goes unseen.
    """
    if nlocal == 0 or ntotal == nlocal or len(rij) == 0:
        return None
    extents = ghost_extents(rij, pair_i, pair_j, nlocal, ntotal)
    sides = extents[extents > 0.5 * cutoff]
    if sides.size == 0:
        return None
    reach, needed = float(sides.max()), depth * cutoff
    if reach >= needed - SLACK:
        return None
    return (f"comm_modify cutoff too small: ghost atoms reach at most {reach:.1f} Å beyond this rank's atoms but the "
            f"{depth}-layer model needs {needed:g} Å ({depth} x r_cut); set comm_modify cutoff {comm_cutoff:g} as in "
            "the exported .lammps.in (or MLANET_ALLOW_SHORT_GHOSTS=1 if no atoms lie further out)")
