"""Frames -> graph tensors, and several graphs -> one disjoint batch graph."""

from dataclasses import dataclass, fields, replace
from typing import Dict, List, Sequence

import numpy as np
import torch

from ..errors import MLANetInputError
from .graph import build_graph
from .io import Frame


@dataclass
class GraphBatch:
    """A batch of G structures with N atoms and E directed edges in total (units Å, eV, eV/Å, eV/Å^3).

    species [N] long, edge_index [2, E] long (center, neighbour), edge_vec [E, 3], batch [N] long (structure of
    each atom), edge_batch [E] long, num_atoms [G] long, volume [G] (0 if not fully periodic),
    energy [G], forces [N, 3], stress [G, 3, 3] (NaN where a label is missing).
    """

    species: torch.Tensor
    edge_index: torch.Tensor
    edge_vec: torch.Tensor
    batch: torch.Tensor
    edge_batch: torch.Tensor
    num_atoms: torch.Tensor
    volume: torch.Tensor
    energy: torch.Tensor
    forces: torch.Tensor
    stress: torch.Tensor

    @property
    def num_graphs(self) -> int:
        return int(self.num_atoms.shape[0])

    def to(self, device: torch.device | str, dtype: torch.dtype) -> "GraphBatch":
        out = {}
        for f in fields(self):
            t = getattr(self, f.name)
            out[f.name] = t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)
        return replace(self, **out)


def species_index(numbers: np.ndarray, atomic_numbers: Sequence[int], where: str) -> np.ndarray:
    """Map atomic numbers to model species indices; unknown elements are an error."""
    lookup: Dict[int, int] = {int(z): k for k, z in enumerate(atomic_numbers)}
    try:
        return np.array([lookup[int(z)] for z in numbers], dtype=np.int64)
    except KeyError as err:
        from ase.data import chemical_symbols
        known = " ".join(chemical_symbols[z] for z in atomic_numbers)
        symbol = chemical_symbols[int(err.args[0])]
        raise MLANetInputError(where, f"element {symbol} unknown to the model (it knows {known})",
                               "use only the model's elements, or retrain including this element") from None


def frame_to_graph(frame: Frame, cutoff: float, atomic_numbers: Sequence[int], mirrored: bool = False) -> GraphBatch:
    """One frame -> a GraphBatch with G = 1 (float64 tensors); `mirrored` edge order as in build_graph."""
    species = species_index(frame.numbers, atomic_numbers, frame.source)
    edge_index, _, edge_vec = build_graph(frame.positions, frame.cell, frame.pbc, cutoff, mirrored)
    n, e = frame.num_atoms, edge_index.shape[1]
    volume = abs(float(np.linalg.det(frame.cell))) if frame.pbc.all() else 0.0
    nan = float("nan")
    return GraphBatch(
        species=torch.from_numpy(species),
        edge_index=torch.from_numpy(edge_index),
        edge_vec=torch.from_numpy(edge_vec),
        batch=torch.zeros(n, dtype=torch.long),
        edge_batch=torch.zeros(e, dtype=torch.long),
        num_atoms=torch.tensor([n]),
        volume=torch.tensor([volume], dtype=torch.float64),
        energy=torch.tensor([nan if frame.energy is None else frame.energy], dtype=torch.float64),
        forces=(torch.from_numpy(frame.forces) if frame.forces is not None
                else torch.full((n, 3), nan, dtype=torch.float64)),
        stress=(torch.from_numpy(frame.stress) if frame.stress is not None
                else torch.full((3, 3), nan, dtype=torch.float64)).unsqueeze(0),
    )


def collate(graphs: List[GraphBatch]) -> GraphBatch:
    """Concatenate graphs into one disjoint graph, offsetting atom indices."""
    offsets = np.cumsum([0] + [int(g.num_atoms.sum()) for g in graphs[:-1]])
    graph_offsets = np.cumsum([0] + [g.num_graphs for g in graphs[:-1]])
    return GraphBatch(
        species=torch.cat([g.species for g in graphs]),
        edge_index=torch.cat([g.edge_index + int(o) for g, o in zip(graphs, offsets)], dim=1),
        edge_vec=torch.cat([g.edge_vec for g in graphs]),
        batch=torch.cat([g.batch + int(o) for g, o in zip(graphs, graph_offsets)]),
        edge_batch=torch.cat([g.edge_batch + int(o) for g, o in zip(graphs, graph_offsets)]),
        num_atoms=torch.cat([g.num_atoms for g in graphs]),
        volume=torch.cat([g.volume for g in graphs]),
        energy=torch.cat([g.energy for g in graphs]),
        forces=torch.cat([g.forces for g in graphs]),
        stress=torch.cat([g.stress for g in graphs]),
    )
