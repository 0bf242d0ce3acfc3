"""Checkpointed chunks: the ranges cover every edge once, with nearly equal edge counts, and index the right rows."""

import numpy as np
import torch

from mlanet_lammps.model.chunks import chunk_bounds, plan_chunks


def test_chunk_bounds_are_balanced_and_cover_all_atoms():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 60, size=500)
    ends = np.cumsum(counts).tolist()
    for max_edges in (100, 1000, 4321, 10**9):
        bounds = chunk_bounds(ends, max_edges)
        assert bounds[0] == 0 and bounds[-1] == len(ends) and all(np.diff(bounds) > 0)
        sizes = [ends[b - 1] - (ends[a - 1] if a else 0) for a, b in zip(bounds[:-1], bounds[1:])]
        assert len(sizes) == -(-ends[-1] // max_edges)  # as few ranges as the bound allows
        assert max(sizes) < max_edges + counts.max()  # exceeds the bound by less than one atom's edges
        assert max(sizes) - min(sizes) <= 2 * counts.max()  # nearly equal
    assert chunk_bounds([5000, 5001], 100) == [0, 1, 2]  # an atom with more edges than the bound: its own range


def test_plan_chunks_index_the_edges_of_their_centres():
    rng = np.random.default_rng(1)
    num_nodes, num_centers, num_edges = 90, 60, 1500
    center = torch.from_numpy(rng.integers(0, num_centers, num_edges))
    neighbor = torch.from_numpy(rng.integers(0, num_nodes, num_edges))
    plan = plan_chunks(center, neighbor, num_nodes, num_centers, 400)
    assert len(plan.edge_counts) == 4
    assert sorted(plan.order.tolist()) == list(range(num_edges))
    assert sum(plan.center_counts) == num_centers and sum(plan.edge_counts) == num_edges
    first, rows, edges = 0, plan.rows.split(plan.row_counts), plan.order.split(plan.edge_counts)
    centers, neighbors = plan.center.split(plan.edge_counts), plan.neighbor.split(plan.edge_counts)
    for n_c, nodes, e, c, j in zip(plan.center_counts, rows, edges, centers, neighbors):
        assert torch.equal(nodes[:n_c], torch.arange(first, first + n_c))  # centres first
        assert len(set(nodes.tolist())) == len(nodes)
        assert set(e.tolist()) == set(torch.nonzero((center >= first) & (center < first + n_c)).squeeze(-1).tolist())
        assert torch.equal(c + first, center[e])
        assert torch.equal(nodes[j], neighbor[e])
        first += n_c
