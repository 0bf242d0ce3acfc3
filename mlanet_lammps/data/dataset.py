"""Frames -> graphs on demand: a data set whose neighbour lists are built when a batch asks for them (in DataLoader
workers), optionally kept in an on-disk cache, so that memory holds the frames and one batch of graphs, not every
graph of the data set."""

import hashlib
import io
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch

from ..fileio import atomic_write_bytes
from .batch import GraphBatch, frame_to_graph
from .io import Frame

CACHE_FORMAT = b"mlanet-graph-1"  # part of every cache key: a new graph layout gets new file names


def graph_key(frame: Frame, cutoff: float, atomic_numbers: Sequence[int]) -> str:
    """sha256 (hex) of everything frame_to_graph reads: geometry, labels, cutoff (Å) and the model's elements."""
    h = hashlib.sha256(CACHE_FORMAT)
    h.update(np.array([cutoff], dtype=np.float64).tobytes())
    h.update(np.asarray(atomic_numbers, dtype=np.int64).tobytes())
    for array in (frame.numbers, frame.positions, frame.cell, frame.pbc, frame.energy, frame.forces, frame.stress):
        h.update(b"-" if array is None else np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return h.hexdigest()


class GraphDataset:
    """The graphs of `frames` (frame_to_graph: G = 1, float64, CPU), built when indexed.

    Works as a map-style data set of torch's DataLoader (len, integer index) and as a sequence (slices give lists).
    With `cache_dir`, a graph is written there once (`<graph_key>.pt`, atomically) and read back afterwards; the key
    covers the frame, the cutoff and the elements, so a changed frame or setting never reads a stale graph, and
    several processes may share one folder.
    """

    def __init__(self, frames: Sequence[Frame], cutoff: float, atomic_numbers: Sequence[int],
                 cache_dir: Optional[str | Path] = None):
        self.frames = list(frames)
        self.cutoff = float(cutoff)
        self.atomic_numbers = list(atomic_numbers)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int | slice) -> GraphBatch | List[GraphBatch]:
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(len(self)))]
        frame = self.frames[index]
        if self.cache_dir is None:
            return frame_to_graph(frame, self.cutoff, self.atomic_numbers)
        path = self.cache_dir / f"{graph_key(frame, self.cutoff, self.atomic_numbers)}.pt"
        if path.is_file():
            return GraphBatch(**torch.load(path, weights_only=True))
        graph = frame_to_graph(frame, self.cutoff, self.atomic_numbers)
        buf = io.BytesIO()
        torch.save(vars(graph), buf)
        atomic_write_bytes(path, buf.getvalue())
        return graph
