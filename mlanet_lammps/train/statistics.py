"""Dataset statistics that initialise the model: per-element reference energies, energy scale, neighbour count,
shortest distance of each species pair (ZBL switch radii)."""

from dataclasses import dataclass
from typing import Iterable, List, Sequence, Tuple

import numpy as np

from ..data.batch import GraphBatch
from ..data.io import Frame
from ..errors import MLANetInputError


def reference_energies(frames: Sequence[Frame], atomic_numbers: Sequence[int]) -> List[float]:
    """Least-squares per-element energies e_Z (eV) with E_frame ~ sum_Z n_Z e_Z (minimum-norm if rank deficient)."""
    labelled = [f for f in frames if f.energy is not None]
    if not labelled:
        return [0.0] * len(atomic_numbers)
    counts = np.array([[np.sum(f.numbers == z) for z in atomic_numbers] for f in labelled], dtype=np.float64)
    energies = np.array([f.energy for f in labelled])
    sol, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return [float(x) for x in sol]


def force_rms(frames: Sequence[Frame]) -> float:
    """RMS of force components (eV/Å); 1.0 if there are no forces."""
    forces = [f.forces for f in frames if f.forces is not None]
    if not forces:
        return 1.0
    rms = float(np.sqrt(np.mean(np.concatenate(forces) ** 2)))
    return rms if rms > 1e-8 else 1.0


@dataclass
class NeighbourStatistics:
    """avg_num_neighbors: mean neighbours within the cutoff per atom (>= 1); shortest: [S][S] shortest edge length
    (Å) of each species pair (inf for pairs that never meet)."""

    avg_num_neighbors: float
    shortest: List[List[float]]


def neighbour_statistics(graphs: Iterable[GraphBatch], num_species: int) -> NeighbourStatistics:
    """The NeighbourStatistics of `graphs` in one pass (a list, or graphs built one by one and then dropped)."""
    shortest = np.full((num_species, num_species), np.inf)
    num_edges, num_atoms = 0, 0
    for g in graphs:
        si, sj = (g.species[g.edge_index[k]].numpy() for k in (0, 1))
        np.minimum.at(shortest, (si, sj), np.linalg.norm(g.edge_vec.numpy(), axis=1))
        num_edges += int(g.edge_index.shape[1])
        num_atoms += int(g.num_atoms.sum())
    return NeighbourStatistics(max(num_edges / max(num_atoms, 1), 1.0), shortest.tolist())


def split_indices(n: int, valid_fraction: float, seed: int, where: str) -> Tuple[np.ndarray, np.ndarray]:
    """Random train/validation split of n frames (at least one frame in each part)."""
    if n < 2:
        raise MLANetInputError(where, f"only {n} frame(s): cannot hold out a validation set",
                               "provide more frames or a separate data.valid_file")
    perm = np.random.default_rng(seed).permutation(n)
    n_valid = min(max(1, int(round(valid_fraction * n))), n - 1)
    return np.sort(perm[n_valid:]), np.sort(perm[:n_valid])
