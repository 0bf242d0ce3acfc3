"""The lazy graph data set (mlanet_lammps/data/dataset.py): the graphs of frame_to_graph, built when indexed, and its
on-disk cache, read back instead of rebuilding and keyed by everything a graph depends on."""

from dataclasses import fields, replace

import pytest
import torch

from mlanet_lammps.data import dataset
from mlanet_lammps.data.batch import frame_to_graph
from mlanet_lammps.data.dataset import GraphDataset, graph_key
from mlanet_lammps.data.io import read_frames
from tests.conftest import FORMATE

NUMBERS = [1, 6, 8, 29]


def assert_same_graph(a, b):
    for f in fields(a):
        torch.testing.assert_close(getattr(a, f.name), getattr(b, f.name), rtol=0, atol=0, equal_nan=True)


def test_graphs_are_built_when_indexed_and_cached(tmp_path, monkeypatch):
    frames = read_frames(FORMATE, index=":3")
    cache = tmp_path / "cache"
    data = GraphDataset(frames, 4.0, NUMBERS, cache)
    assert len(data) == 3 and not cache.exists()  # nothing is built up front
    built = data[1]
    assert_same_graph(built, frame_to_graph(frames[1], 4.0, NUMBERS))
    assert [p.name for p in cache.iterdir()] == [f"{graph_key(frames[1], 4.0, NUMBERS)}.pt"]

    def no_building(*_):
        raise AssertionError("graph built again")

    monkeypatch.setattr(dataset, "frame_to_graph", no_building)
    assert_same_graph(data[1], built)  # read from the cache
    assert_same_graph(GraphDataset(frames, 4.0, NUMBERS, cache)[1:2][0], built)  # by another run too
    with pytest.raises(AssertionError, match="built again"):
        data[0]


def test_cache_key_covers_geometry_labels_cutoff_and_elements():
    frame = read_frames(FORMATE, index=":1")[0]
    key = graph_key(frame, 4.0, NUMBERS)
    moved = replace(frame, positions=frame.positions + [[1e-9, 0.0, 0.0]])
    relabelled = replace(frame, energy=frame.energy + 1e-6)
    others = [graph_key(moved, 4.0, NUMBERS), graph_key(relabelled, 4.0, NUMBERS), graph_key(frame, 4.5, NUMBERS),
              graph_key(frame, 4.0, NUMBERS + [47]), graph_key(replace(frame, forces=None), 4.0, NUMBERS)]
    assert key == graph_key(replace(frame), 4.0, NUMBERS)
    assert len({key, *others}) == 1 + len(others)
