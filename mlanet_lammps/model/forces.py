"""Energy -> forces and virial by autograd with respect to edge vectors (shared by training, ASE and LAMMPS).

With g_e = dE/d r_e for each edge e = (i, j), r_e = r_j - r_i + shift:
  F_i = sum_{e: center i} g_e - sum_{e: neighbour i} g_e           (eV/Å)
  dE/d(strain)_ab = sum_e r_e,a g_e,b ;  stress = that / volume   (eV/Å^3, ASE sign convention)
LAMMPS' `update_pair_forces(fij)` takes fij = g_e directly and does the same scatter and virial itself.
"""

from typing import Tuple

import torch
from torch import nn

from .uncertainty import require_head


class EnergyAndEdgeGradient(nn.Module):
    """Wraps a per-atom energy model.

    forward(edge_vec [E,3] Å, species [N], edge_index [2,E], num_local=-1, max_edges=0)
      -> (atom_energy [n] eV, edge_grad [E,3] eV/Å = d(sum_i E_i)/d edge_vec, atom_uncertainty [n, 2])
    num_local and max_edges are passed to the model (MLANet.forward): n local atoms (-1: all N), whose ghosts get
    their features by the model's ghost exchange, so that edge_grad is that of the energy of every process.
    atom_uncertainty holds the model's per-atom energy (eV) and force (eV/Å) uncertainties (MLANet.atom_uncertainty)
    with `uncertainty=True`, else it is empty ([0, 2]) and costs nothing.

    Example:
        >>> atom_energy, edge_grad, _ = EnergyAndEdgeGradient(model)(edge_vec, species, edge_index)
    """

    def __init__(self, model: nn.Module, create_graph: bool = False, uncertainty: bool = False):
        super().__init__()
        if uncertainty:
            require_head(model)
        self.model = model
        self.create_graph = create_graph
        self.uncertainty = uncertainty

    def forward(self, edge_vec: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor, num_local: int = -1,
                max_edges: int = 0) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not edge_vec.requires_grad:
            edge_vec = edge_vec.detach().requires_grad_(True)
        atom_energy, features = self.model.energy_and_features(edge_vec, species, edge_index, num_local=num_local,
                                                               max_edges=max_edges)
        grads = torch.autograd.grad([atom_energy.sum()], [edge_vec], create_graph=self.create_graph, allow_unused=True)
        grad = grads[0]
        if grad is None:
            grad = torch.zeros_like(edge_vec)
        if self.uncertainty:
            uncertainty = self.model.atom_uncertainty(features.detach(), species[:atom_energy.shape[0]])  # [n, 2]
        else:
            uncertainty = atom_energy.new_zeros(0, 2)
        return atom_energy, grad, uncertainty


def forces_from_edge_grad(edge_grad: torch.Tensor, edge_index: torch.Tensor, num_atoms: int) -> torch.Tensor:
    """edge_grad [E,3] (dE/dr_ij), edge_index [2,E] -> forces [num_atoms, 3] in eV/Å."""
    forces = edge_grad.new_zeros(num_atoms, 3)
    forces.index_add_(0, edge_index[0], edge_grad)
    forces.index_add_(0, edge_index[1], -edge_grad)
    return forces


def virial_from_edge_grad(edge_vec: torch.Tensor, edge_grad: torch.Tensor, edge_graph: torch.Tensor,
                          num_graphs: int) -> torch.Tensor:
    """dE/d(strain) per structure: [num_graphs, 3, 3] in eV (symmetrised). Divide by the volume for the stress.

    edge_graph: [E] index of the structure each edge belongs to.
    """
    outer = edge_vec.unsqueeze(-1) * edge_grad.unsqueeze(-2)
    w = edge_vec.new_zeros(num_graphs, 3, 3).index_add_(0, edge_graph, outer)
    return 0.5 * (w + w.transpose(-1, -2))

