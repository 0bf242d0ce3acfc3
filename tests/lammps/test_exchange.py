"""Ghost features exchanged between MPI ranks (exchange.py), checked under mpirun without LAMMPS: the exchange
moves the owners' rows and its reverse is its adjoint, and a water box split over ranks by hand gives each atom's
energy and every pair's dE/d rij of the whole box, also evaluated in checkpointed chunks."""

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.lammps

# rank 2 owns no atom; ghosts are drawn at random from all atoms (also the rank's own: periodic images)
SCRIPT = """
import json, sys
import numpy as np, torch
from mpi4py import MPI
from e3nn.util.jit import script as e3nn_script
sys.path.insert(0, sys.argv[1])
import ase.io
from mlanet_lammps.data.batch import frame_to_graph
from mlanet_lammps.data.io import Frame
from mlanet_lammps.lammps.exchange import GhostExchange, exchanged_energy_and_forces
from tests.conftest import WATER, make_model

comm = MPI.COMM_WORLD
rank, out = comm.Get_rank(), {}
sys.excepthook = lambda *exc: (sys.__excepthook__(*exc), comm.Abort(1))  # a failing rank must not leave the others waiting

rng = np.random.default_rng(0)
ids = rng.permutation(np.arange(1, 41)) * 7
owner = rng.integers(0, 2, len(ids))
local_ids = ids[owner == rank]
ghost_ids = np.random.default_rng(rank + 1).choice(ids, 25)
feature = lambda t: np.stack([t, (t * t) % 97, -0.5 * t], 1).astype(np.float64)
exchange = GhostExchange(comm, local_ids, ghost_ids, torch.device("cpu"))
x = torch.from_numpy(feature(local_ids))
ghost = exchange.forward(x)
out["forward_error"] = float(np.abs(ghost.numpy() - feature(ghost_ids)).max())
y = torch.from_numpy(np.random.default_rng(rank + 10).normal(size=(len(ghost_ids), 3)))
back = exchange.reverse(y, len(local_ids))
all_ghost_ids = np.concatenate(comm.allgather(ghost_ids))
all_y = np.concatenate(comm.allgather(y.numpy()))
expected = np.array([all_y[all_ghost_ids == t].sum(0) for t in local_ids]).reshape(-1, 3)
out["reverse_error"] = float(np.abs(back.numpy() - expected).max(initial=0.0))
out["adjoint_gap"] = abs(comm.allreduce(float((ghost * y).sum())) - comm.allreduce(float((x * back).sum())))

model = make_model([1, 8], cutoff=4.0, num_layers=3)
script = e3nn_script(model)
graph = frame_to_graph(Frame.from_atoms(ase.io.read(WATER, 0)), model.cutoff, [1, 8])
center, neighbor = graph.edge_index
edge_vec = graph.edge_vec.clone().requires_grad_(True)
energies = model(edge_vec, graph.species, graph.edge_index)
full_grad, = torch.autograd.grad(energies.sum(), edge_vec)
n = len(graph.species)
atom_owner = np.random.default_rng(5).integers(0, 2, n)  # atom a (ID a + 1) lives on rank atom_owner[a]
local = np.flatnonzero(atom_owner == rank)
pairs = np.flatnonzero(np.isin(center.numpy(), local))
j = neighbor.numpy()[pairs]
ghosts = np.unique(j[atom_owner[j] != rank])
compact = np.full(n, -1)
compact[local] = np.arange(len(local))
compact[ghosts] = len(local) + np.arange(len(ghosts))
exchange = GhostExchange(comm, local + 1, ghosts + 1, torch.device("cpu"))
species = graph.species[torch.from_numpy(np.concatenate([local, ghosts]))]
e, fij = exchanged_energy_and_forces(script, exchange, graph.edge_vec[pairs],
                                     torch.from_numpy(compact[center.numpy()[pairs]]), torch.from_numpy(compact[j]),
                                     species, len(local))
# and in checkpointed chunks of at most 700 pairs (several per layer)
e_chunked, fij_chunked = exchanged_energy_and_forces(script, exchange, graph.edge_vec[pairs],
                                                     torch.from_numpy(compact[center.numpy()[pairs]]),
                                                     torch.from_numpy(compact[j]), species, len(local), 700)
out["pairs"] = int(len(pairs))
err = lambda a, b: float(np.abs(a.detach().numpy() - b.detach().numpy()).max(initial=0.0))
out["energy_error"] = max(err(x, energies[local]) for x in (e, e_chunked))
out["fij_error"] = max(err(x, full_grad[pairs]) for x in (fij, fij_chunked))
out["fij_scale"] = float(full_grad.abs().max())
out["nlocal"] = int(len(local))
gathered = comm.gather(out)
if rank == 0:
    print("RESULT", json.dumps(gathered), flush=True)
"""


def test_exchange_moves_owner_rows_and_reverse_is_its_adjoint_and_split_box_is_exact():
    if not shutil.which("mpirun"):
        pytest.skip("mpirun not installed")
    proc = subprocess.run(["mpirun", "-np", "3", sys.executable, "-c", SCRIPT, str(ROOT)], capture_output=True,
                          text=True, timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert len(results) == 3
    assert sorted(r["nlocal"] for r in results)[0] == 0  # rank 2 owns no atom and still takes part
    assert max(r["pairs"] for r in results) > 3 * 700  # the chunked evaluation runs in several chunks
    for r in results:
        assert r["forward_error"] == 0.0
        assert r["reverse_error"] < 1e-12
        assert r["adjoint_gap"] < 1e-9
        assert r["energy_error"] < 1e-12
        assert r["fij_error"] < 1e-12 * max(r["fij_scale"], 1.0)
