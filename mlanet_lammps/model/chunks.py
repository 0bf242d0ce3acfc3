"""Checkpointed chunks: a layer's edges split into ranges of consecutive centre atoms, so that a large evaluation
holds the autograd memory of one range at a time (MLANet.forward's max_edges)."""

from bisect import bisect_left
from typing import List, NamedTuple

import torch


class EdgeChunk(NamedTuple):
    """The edges centred on atoms [first, last) and the node rows they read (plan_chunks)."""

    first: int
    last: int
    edges: torch.Tensor  # [E_c] the chunk's edges
    nodes: torch.Tensor  # [M_c] node rows it reads: its centres first..last-1, then their other neighbours
    center: torch.Tensor  # [E_c] each edge's centre, in [0, last - first)
    neighbor: torch.Tensor  # [E_c] each edge's neighbour, as a position in nodes


def chunk_bounds(ends: List[int], max_edges: int) -> List[int]:
    """Boundaries [0, ..., n] of consecutive atom ranges with nearly equal edge counts, as few ranges as keep each at
    about max_edges or less (a range can exceed it by less than one atom's edges); ends[i] = edges centred on atoms
    0..i. Equal ranges let each one reuse the memory the one before freed."""
    total = ends[-1] if ends else 0
    ranges = max(1, -(-total // max(1, max_edges)))
    cuts = [bisect_left(ends, total * j / ranges) + 1 for j in range(1, ranges)]
    return sorted(set([0] + [c for c in cuts if 0 < c < len(ends)] + [len(ends)]))


def plan_chunks(center: torch.Tensor, neighbor: torch.Tensor, num_nodes: int, num_centers: int,
                max_edges: int) -> List[EdgeChunk]:
    """Split the edges (center/neighbor [E] into [n] and [N] atoms) into EdgeChunks of consecutive centre atoms with
    about max_edges edges each (chunk_bounds). Computed once per evaluation, for every layer, before any layer
    allocates its large per-edge tensors."""
    ends = torch.cumsum(torch.bincount(center, minlength=num_centers), 0).tolist()  # edges centred on atoms 0..i
    order = torch.argsort(center, stable=True)
    bounds = chunk_bounds(ends, max_edges)
    chunks: List[EdgeChunk] = []
    for first, last in zip(bounds[:-1], bounds[1:]):
        edges = order[(ends[first - 1] if first > 0 else 0):ends[last - 1]]  # [E_c]
        neighbors = neighbor.index_select(0, edges)
        others = torch.zeros(num_nodes, dtype=torch.bool, device=center.device)
        others[neighbors] = True
        others[first:last] = False
        nodes = torch.cat([torch.arange(first, last, device=center.device), torch.nonzero(others).squeeze(-1)])
        position = torch.full((num_nodes,), -1, dtype=torch.long, device=center.device)
        position[nodes] = torch.arange(nodes.shape[0], device=center.device)
        chunks.append(EdgeChunk(first, last, edges, nodes, center.index_select(0, edges) - first,
                                position.index_select(0, neighbors)))
    return chunks
