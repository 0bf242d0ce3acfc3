"""The ghost exchange (lammps/exchange.py) inside the model's layer loop: the forward exchange moves the owners'
rows and the reverse is its adjoint, ghosts of the rank's own atoms are folded onto them, and a water box split
into local atoms and ghost copies gives each atom's
energy and every pair's dE/d rij of the whole box, whole and in checkpointed chunks: on one process (every owner
local, no MPI) and under mpirun on 3 ranks (one owns no atom)."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from mlanet_lammps.lammps.errors import MLANetLammpsError
from mlanet_lammps.lammps.exchange import GhostExchange
from tests.conftest import ROOT

SPLIT = """
import ase.io
import numpy as np, torch
from mlanet_lammps.data.batch import frame_to_graph
from mlanet_lammps.data.io import Frame
from mlanet_lammps.lammps.exchange import GhostExchange
from mlanet_lammps.model.forces import EnergyAndEdgeGradient
from tests.conftest import WATER, make_model


def split_box_errors(comm, rank, atom_owner, max_edges):
    '''Largest errors of one rank's energies and dE/d rij against the whole box (atom a has ID a + 1).'''
    model = make_model([1, 8], cutoff=4.0, num_layers=3)
    graph = frame_to_graph(Frame.from_atoms(ase.io.read(WATER, 0)), model.cutoff, [1, 8])
    center, neighbor = graph.edge_index.numpy()
    edge_vec = graph.edge_vec.clone().requires_grad_(True)
    energies = model(edge_vec, graph.species, graph.edge_index)
    full_grad, = torch.autograd.grad(energies.sum(), edge_vec)
    local = np.flatnonzero(atom_owner(len(graph.species)) == rank)
    pairs = np.flatnonzero(np.isin(center, local))
    position = np.full(len(graph.species), -1)
    position[local] = np.arange(len(local))
    # every pair gets a ghost copy of its neighbour (LAMMPS: periodic images and other ranks' atoms)
    ghost_of = neighbor[pairs]
    nodes = np.concatenate([local, ghost_of])
    exchange = GhostExchange(nodes + 1, len(local), comm, torch.device("cpu"))
    model.ghost_features.exchange = exchange
    j = exchange.node_of[torch.from_numpy(len(local) + np.arange(len(pairs)))]  # rows; own atoms' images folded
    edge_index = torch.stack([torch.from_numpy(position[center[pairs]]), j])
    species = graph.species[torch.from_numpy(nodes)][exchange.rows]
    e, fij, _ = EnergyAndEdgeGradient(model)(graph.edge_vec[pairs], species, edge_index, len(local), max_edges)
    err = lambda a, b: float(np.abs(a.detach().numpy() - b.detach().numpy()).max(initial=0.0))
    return {"energy_error": err(e, energies[local]), "fij_error": err(fij, full_grad[pairs]),
            "fij_scale": float(full_grad.abs().max()), "pairs": int(len(pairs)), "nlocal": int(len(local))}
"""

SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
exec(sys.argv[2])
from mpi4py import MPI
comm = MPI.COMM_WORLD
rank = comm.Get_rank()
# a failing rank must not leave the others waiting
sys.excepthook = lambda *exc: (sys.__excepthook__(*exc), comm.Abort(1))

rng = np.random.default_rng(0)
ids = rng.permutation(np.arange(1, 41)) * 7
owner = rng.integers(0, 2, len(ids))  # rank 2 owns no atom
local_ids = ids[owner == rank]
ghost_ids = np.random.default_rng(rank + 1).choice(ids, 25)  # also the rank's own atoms (periodic images)
feature = lambda t: np.stack([t, (t * t) % 97, -0.5 * t], 1).astype(np.float64)
all_ids = np.concatenate([local_ids, ghost_ids])
exchange = GhostExchange(all_ids, len(local_ids), comm, torch.device("cpu"))
row_ids = all_ids[exchange.rows.numpy()]  # local atoms, then the ghosts of other ranks' atoms
remote = len(row_ids) - len(local_ids)
out = {"folded_ok": bool((row_ids[exchange.node_of.numpy()] == all_ids).all()), "remote": int(remote)}
x = torch.from_numpy(np.concatenate([feature(local_ids), np.zeros((remote, 3))]))
ghost = torch.empty_like(x)
exchange.forward_exchange(x, ghost, 3)
out["forward_error"] = float(np.abs(ghost.numpy() - feature(row_ids)).max())
y = torch.from_numpy(np.random.default_rng(rank + 10).normal(size=(len(row_ids), 3)))
back = torch.empty_like(y)
exchange.reverse_exchange(y, back, 3)
all_ghost_ids = np.concatenate(comm.allgather(row_ids[len(local_ids):]))
all_y = np.concatenate(comm.allgather(y.numpy()[len(local_ids):]))
expected = np.array([y.numpy()[i] + all_y[all_ghost_ids == t].sum(0) for i, t in enumerate(local_ids)]).reshape(-1, 3)
out["reverse_error"] = float(np.abs(back.numpy()[:len(local_ids)] - expected).max(initial=0.0))
out["ghost_rows_zero"] = bool((back.numpy()[len(local_ids):] == 0).all())
# <forward(x), y> = <x, reverse(y)> summed over ranks (x zero on ghost rows)
out["adjoint_gap"] = abs(comm.allreduce(float((ghost * y).sum())) - comm.allreduce(float((x * back).sum())))
owners = lambda n: np.random.default_rng(5).integers(0, 2, n)  # ranks 0 and 1; rank 2 owns no atom
for max_edges in (0, 350):
    out.update({f"{k}_{max_edges}": v for k, v in split_box_errors(comm, rank, owners, max_edges).items()})
gathered = comm.gather(out)
if rank == 0:
    print("RESULT", json.dumps(gathered), flush=True)
"""


@pytest.mark.parametrize("max_edges", [0, 350])
def test_one_process_split_box_is_exact(max_edges):
    """One process, every ghost a copy of a local atom: the same energies and dE/d rij as the whole box."""
    namespace: dict = {}
    exec(SPLIT, namespace)
    r = namespace["split_box_errors"](None, 0, lambda n: np.zeros(n, dtype=int), max_edges)
    assert r["pairs"] > 3 * 350  # chunked: several chunks per layer
    assert r["energy_error"] < 1e-12
    assert r["fij_error"] < 1e-12 * max(r["fij_scale"], 1.0)


def test_duplicate_and_ownerless_ids_are_refused():
    with pytest.raises(MLANetLammpsError, match=r"atom IDs \[3\] are used by more than one atom"):
        GhostExchange(np.array([1, 3, 3, 1]), 3, None, torch.device("cpu"))
    with pytest.raises(MLANetLammpsError, match=r"ghost atoms with IDs \[9\] copy no atom"):
        GhostExchange(np.array([1, 2, 9]), 2, None, torch.device("cpu"))


@pytest.mark.lammps
def test_three_ranks_exchange_and_split_box_are_exact():
    if not shutil.which("mpirun"):
        pytest.skip("mpirun not installed")
    proc = subprocess.run(["mpirun", "-np", "3", sys.executable, "-c", SCRIPT, str(ROOT), SPLIT],
                          capture_output=True, text=True, timeout=300,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert len(results) == 3
    assert sorted(r["nlocal_0"] for r in results)[0] == 0  # rank 2 owns no atom and still takes part
    assert max(r["pairs_0"] for r in results) > 3 * 350  # the chunked evaluation runs in several chunks
    for r in results:
        assert r["folded_ok"] and r["remote"] > 0  # images of own atoms folded, other ranks' atoms exchanged
        assert r["forward_error"] == 0.0
        assert r["reverse_error"] < 1e-12
        assert r["ghost_rows_zero"]
        assert r["adjoint_gap"] < 1e-9
        for max_edges in (0, 350):
            assert r[f"energy_error_{max_edges}"] < 1e-12
            assert r[f"fij_error_{max_edges}"] < 1e-12 * max(r[f"fij_scale_{max_edges}"], 1.0)
