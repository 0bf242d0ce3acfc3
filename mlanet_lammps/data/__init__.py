"""Reading and validating structures, neighbour lists with PBC, and batching graphs."""

from .io import Frame, read_frames
from .graph import build_graph
from .batch import GraphBatch, collate, frame_to_graph

__all__ = ["Frame", "read_frames", "build_graph", "GraphBatch", "collate", "frame_to_graph"]
