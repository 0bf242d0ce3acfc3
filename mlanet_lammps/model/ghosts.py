"""Ghost atoms: node features of atoms whose energies another process computes, copied in between layers.

When a structure is split over processes (LAMMPS' MPI domains), each process holds its own atoms ("local", rows
[0, n) of the node features) and copies of the atoms around them ("ghosts", rows [n, N)). Each layer then updates
the local atoms only, over the edges centred on them; before the next layer the ghost rows are overwritten with the
features of the atoms they copy ("forward exchange"). In the backward pass the gradients that arrived at the ghost
rows are summed onto those atoms ("reverse exchange"). Autograd thus yields dE/d edge_vec of the energy of every
process, through the same `EnergyAndEdgeGradient` as in training and ASE, where there are no ghosts.

The exchange itself is supplied by the caller through the `GhostExchange` interface, which has the shape of the
KOKKOS ML-IAP coupling's `forward_exchange(src, dst, width)` / `reverse_exchange(src, dst, width)`, so LAMMPS' own
exchange can be passed in unchanged where it exists (mlanet_lammps/lammps/exchange.py implements it with mpi4py).
"""

from typing import Optional, Protocol

import torch
from torch import nn


class GhostExchange(Protocol):
    """Moves node features between the atoms of a process and its ghost copies of atoms, over [N, width] tensors
    whose rows [0, n) are the local atoms and rows [n, N) the ghosts."""

    def forward_exchange(self, src: torch.Tensor, dst: torch.Tensor, width: int) -> None:
        """dst[:n] = src[:n]; each ghost row of dst = the row of the atom it copies (wherever that atom lives)."""

    def reverse_exchange(self, src: torch.Tensor, dst: torch.Tensor, width: int) -> None:
        """dst[:n] = src[:n] + the src rows of every ghost copy of that atom (on any process); dst[n:] = 0."""


class ExchangeGhostFeatures(torch.autograd.Function):
    """features [N, F] -> the same with ghost rows from their atoms; backward: the reverse exchange."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, exchange: GhostExchange) -> torch.Tensor:
        features = features.contiguous()
        out = torch.empty_like(features)
        exchange.forward_exchange(features, out, features.shape[1])
        ctx.exchange = exchange
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        out = torch.empty_like(grad)
        ctx.exchange.reverse_exchange(grad, out, grad.shape[1])
        return out, None


class GhostFeatures(nn.Module):
    """The step between two layers that fills the ghost rows: forward(local [n, F], num_nodes N) -> [N, F].

    Without an exchange (training, ASE: n == N) it returns `local` itself. With one (LAMMPS:
    mlanet_lammps/lammps/evaluator.py sets it for the current atoms) every call exchanges, also on a process with
    no ghost rows: the exchange is collective, and other processes may hold ghosts of this one's atoms.

    Example:
        >>> model.ghost_features.exchange = exchange  # before evaluating a LAMMPS rank's atoms
    """

    def __init__(self):
        super().__init__()
        self.exchange: Optional[GhostExchange] = None

    def forward(self, local: torch.Tensor, num_nodes: int) -> torch.Tensor:
        if self.exchange is None:
            if local.shape[0] != num_nodes:
                raise RuntimeError(f"{num_nodes - local.shape[0]} ghost atoms but no ghost exchange set "
                                   "(model.ghost_features.exchange)")
            return local
        return self.exchanged(local, num_nodes)

    @torch.compiler.disable  # MPI between two compiled graphs (model/compiled.py)
    def exchanged(self, local: torch.Tensor, num_nodes: int) -> torch.Tensor:
        ghosts = local.new_zeros((num_nodes - local.shape[0], local.shape[1]))
        return ExchangeGhostFeatures.apply(torch.cat([local, ghosts]), self.exchange)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(exchange={type(self.exchange).__name__ if self.exchange else None})"
