"""Reading and validating structures, neighbour lists with PBC, and batching graphs."""

from .batch import GraphBatch, collate, frame_to_graph
from .graph import build_graph
from .io import Frame, read_frames

__all__ = ["Frame", "read_frames", "build_graph", "GraphBatch", "collate", "frame_to_graph"]
