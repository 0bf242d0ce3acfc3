"""MLANet on one LAMMPS rank: its pairs in, energies of its atoms and dE/d rij of its pairs out.

Every rank evaluates the pairs centred on its own (local) atoms. The model's layer loop fills the ghost rows of
the node features between layers through the rank's GhostExchange (exchange.py), and autograd through the
exchange gives fij = dE/d rij of the energy summed over all ranks (model/ghosts.py). Ghosts that are images of
the rank's own atoms are folded onto them (on one rank: all of them, so nothing is exchanged). An evaluation larger
than the rank's budget runs in the model's checkpointed chunks (MLANet.forward's max_edges, resources.chunk_edges).
"""

from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy as np
import torch

from ..allocator import release_free_memory
from ..model.forces import EnergyAndEdgeGradient
from ..model.mlanet import MLANet
from .exchange import GhostExchange
from .resources import chunk_edges
from .uncertainty_output import UncertaintyOutput


@dataclass
class RankPairs:
    """One rank's input: rij [P,3] Å (x_j - x_i), pair_i [P] < nlocal, pair_j [P] < ntotal (int32 or int64),
    species [ntotal], atom IDs [ntotal] (local atoms first, then ghosts), on the model's device."""

    rij: torch.Tensor
    pair_i: torch.Tensor
    pair_j: torch.Tensor
    species: torch.Tensor
    ids: np.ndarray
    nlocal: int


class RankEvaluator:
    """The model of one rank and its ghost exchange, rebuilt when LAMMPS reneighbours (the atoms or ghosts change).

    Args:
        model: MLANet in the run's dtype, on `device`.
        device: where the model runs.
        max_pairs: (pair, layer) evaluations held at once (0: no bound); an evaluation with more runs each layer in
            checkpointed chunks of resources.chunk_edges edges.
        comm: mpi4py communicator of the LAMMPS instance, None on one rank.
        output: where the per-atom uncertainties go (uncertainty_output.py); None: they are not computed.
    """

    def __init__(self, model: MLANet, device: torch.device, max_pairs: int, comm: Optional[Any],
                 output: Optional[UncertaintyOutput] = None):
        self.model, self.device, self.comm, self.output = model, device, comm, output
        self.energy_grad = EnergyAndEdgeGradient(model, uncertainty=output is not None)
        self.max_pairs = max_pairs
        self.chunk_edges = chunk_edges(device, max_pairs, model.num_layers) if max_pairs > 0 else 0
        self.exchange: Optional[GhostExchange] = None
        self._ids: Optional[np.ndarray] = None
        self.rebuilds = 0  # exchange plans built since loading

    def refresh_exchange(self, ids: np.ndarray, nlocal: int) -> GhostExchange:
        """The exchange for these atoms: kept while every rank's atom IDs are unchanged (between reneighbourings),
        else rebuilt on every rank together (collective)."""
        same = (self.exchange is not None and self.exchange.nlocal == nlocal and self._ids is not None
                and np.array_equal(self._ids, ids))
        if self.comm is not None:  # rebuild on every rank if any rank's atoms changed
            same = self.comm.allreduce(int(not same)) == 0
        if not same:
            self.exchange, self._ids = GhostExchange(ids, nlocal, self.comm, self.device), ids.copy()
            self.rebuilds += 1
        return self.exchange

    def __call__(self, pairs: RankPairs, exchange: GhostExchange) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(E_i [nlocal] eV, fij [P,3] eV/Å = dE/d rij of the energy of all ranks, uncertainties [nlocal, 2] (eV,
        eV/Å; [0, 2] without output)), with the exchange refresh_exchange returned for these atoms. Collective on
        several ranks."""
        # on one rank every ghost is folded onto its atom: nothing to exchange between layers
        self.model.ghost_features.exchange = exchange if self.comm is not None else None
        edge_index = torch.stack([pairs.pair_i.long(), exchange.node_of.index_select(0, pairs.pair_j)])  # [2, P] rows
        species = pairs.species.index_select(0, exchange.rows)  # [nlocal + R]
        whole = self.max_pairs == 0 or self.model.num_layers * pairs.rij.shape[0] <= self.max_pairs
        energy, fij, uncertainty = self.energy_grad(pairs.rij, species, edge_index, pairs.nlocal,
                                                    0 if whole else self.chunk_edges)
        if not whole and self.device.type == "cpu":  # keep the heap of one large step from holding the next one's
            release_free_memory()
        return energy.detach(), fij.detach(), uncertainty

