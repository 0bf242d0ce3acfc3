"""Checkpointed chunks: a layer's edges split into ranges of consecutive centre atoms, so that a large evaluation
holds the autograd memory of one range at a time (MLANet.forward's max_edges).

The plan lays every chunk's inputs out one after the other: the edges sorted by centre, and the node rows each chunk
reads, concatenated. A layer then gathers its inputs for all chunks at once and splits them into views, whose
backward is one concatenation: no chunk's backward touches a tensor of the size of the whole evaluation, so the cost
of a step stays linear in its size however many chunks it has.
"""

from bisect import bisect_left
from typing import List, NamedTuple, Optional

import torch


class ChunkPlan(NamedTuple):
    """The edges of an evaluation in ranges of consecutive centre atoms (plan_chunks).

    Chunk c holds the edge_counts[c] edges that follow those of chunks 0..c-1 in `order`, centred on its
    center_counts[c] atoms, and reads the row_counts[c] node rows that follow those of chunks 0..c-1 in `rows`: its
    centres first, then their other neighbours (a neighbour row may appear in several chunks)."""

    order: Optional[torch.Tensor]  # [E] the edges, by centre atom; None: they already are
    edge_counts: List[int]  # [C] edges per chunk
    rows: torch.Tensor  # [sum M_c] the node rows each chunk reads, chunk after chunk
    row_counts: List[int]  # [C] rows per chunk (M_c)
    center_counts: List[int]  # [C] centre atoms per chunk (n_c)
    center: torch.Tensor  # [E] in `order`: each edge's centre, as a row of its chunk (< n_c)
    neighbor: torch.Tensor  # [E] in `order`: each edge's neighbour, as a row of its chunk (< M_c)


def chunk_bounds(ends: List[int], max_edges: int) -> List[int]:
    """Boundaries [0, ..., n] of consecutive atom ranges with nearly equal edge counts, as few ranges as keep each at
    about max_edges or less (a range can exceed it by less than one atom's edges); ends[i] = edges centred on atoms
    0..i. Equal ranges let each one reuse the memory the one before freed."""
    total = ends[-1] if ends else 0
    ranges = max(1, -(-total // max(1, max_edges)))
    cuts = [bisect_left(ends, total * j / ranges) + 1 for j in range(1, ranges)]
    return sorted(set([0] + [c for c in cuts if 0 < c < len(ends)] + [len(ends)]))


def plan_chunks(center: torch.Tensor, neighbor: torch.Tensor, num_nodes: int, num_centers: int,
                max_edges: int) -> ChunkPlan:
    """Split the edges (center/neighbor [E] into [n] and [N] atoms) into ranges of consecutive centre atoms with
    about max_edges edges each (chunk_bounds). Computed once per evaluation, for every layer, before any layer
    allocates its large per-edge tensors."""
    device = center.device
    ends = torch.cumsum(torch.bincount(center, minlength=num_centers), 0).tolist()  # edges centred on atoms 0..i
    if bool((center[1:] >= center[:-1]).all()):  # already by centre (LAMMPS' pair lists): no reordered copies
        order = None
    else:
        order = torch.argsort(center, stable=True)  # [E]
    bounds = chunk_bounds(ends, max_edges)
    neighbors = neighbor if order is None else neighbor.index_select(0, order)  # [E] by centre
    position = torch.full((num_nodes,), -1, dtype=torch.long, device=device)  # a node's row in the current chunk
    rows: List[torch.Tensor] = []
    local_neighbor: List[torch.Tensor] = []
    edge_counts: List[int] = []
    for first, last in zip(bounds[:-1], bounds[1:]):
        start, stop = (ends[first - 1] if first > 0 else 0), ends[last - 1]
        chunk_neighbors = neighbors[start:stop]
        seen = torch.unique(chunk_neighbors)
        others = seen[(seen < first) | (seen >= last)]
        nodes = torch.cat([torch.arange(first, last, device=device), others])  # [M_c]
        position[nodes] = torch.arange(nodes.shape[0], device=device)
        rows.append(nodes)
        local_neighbor.append(position.index_select(0, chunk_neighbors))
        edge_counts.append(stop - start)
    first_of_edge = torch.repeat_interleave(torch.tensor(bounds[:-1], device=device),
                                            torch.tensor(edge_counts, device=device))  # [E] its chunk's first centre
    return ChunkPlan(order, edge_counts, torch.cat(rows), [r.shape[0] for r in rows],
                     [b - a for a, b in zip(bounds[:-1], bounds[1:])],
                     (center if order is None else center.index_select(0, order)) - first_of_edge,
                     torch.cat(local_neighbor))
