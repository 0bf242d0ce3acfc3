"""Energy -> forces and virial by autograd with respect to edge vectors (shared by training, ASE and LAMMPS).

With g_e = dE/d r_e for each edge e = (i, j), r_e = r_j - r_i + shift:
  F_i = sum_{e: center i} g_e - sum_{e: neighbour i} g_e           (eV/Å)
  dE/d(strain)_ab = sum_e r_e,a g_e,b ;  stress = that / volume   (eV/Å^3, ASE sign convention)
LAMMPS' `update_pair_forces(fij)` takes fij = g_e directly and does the same scatter and virial itself.
"""

from typing import Optional, Tuple

import torch
from torch import nn


class EnergyAndEdgeGradient(nn.Module):
    """Wraps a per-atom energy model.

    forward(edge_vec [E,3], species [N], edge_index [2,E], energy_mask [N] (1 for atoms whose energies count),
            hop Optional[N]) -> (atom_energy [N] eV, edge_grad [E,3] eV/Å = d(sum_i mask_i E_i)/d edge_vec)
    """

    def __init__(self, model: nn.Module, create_graph: bool = False):
        super().__init__()
        self.model = model
        self.create_graph = create_graph

    def forward(self, edge_vec: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor,
                energy_mask: torch.Tensor, hop: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        if not edge_vec.requires_grad:
            edge_vec = edge_vec.detach().requires_grad_(True)
        atom_energy = self.model(edge_vec, species, edge_index, hop)
        total = (atom_energy * energy_mask).sum()
        grads = torch.autograd.grad([total], [edge_vec], create_graph=self.create_graph, allow_unused=True)
        grad = grads[0]
        if grad is None:
            grad = torch.zeros_like(edge_vec)
        return atom_energy, grad


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

