"""Angular density invariants: smooth three-body features of each atom's neighbourhood.

For atom i, radial channel k and spherical harmonic (l, m):
  A_iklm   = (1 / avg_num_neighbors) sum_j  R_k(d_ij, z_j) Y_lm(r_hat_ij)          R_k = (W e(d_ij)) * (V z_j)
  B_i,kk'l = sum_m A_iklm A_ik'lm / sqrt(2l + 1)                                  (k <= k', l = 0..l_max)
e(d) is the enveloped Bessel basis, so every R_k, A and B go to zero smoothly as a neighbour leaves the cutoff.
B is the power spectrum of the neighbour density: the sum over m makes it rotation invariant, and
A_ik A_ik' = sum_jj' R R' P_l(cos theta_jij') holds every angle j-i-j' with the Legendre polynomials P_l, l <= l_max.
One linear layer maps B into the scalar channels of the node features. The sum runs over i's neighbours only,
so it is as local as one message-passing layer.
"""

from typing import List, Tuple

import torch
from torch import nn

from .scatter import gather, scatter_sum


class AngularDensity(nn.Module):
    """forward(sh [E, (l_max_sh+1)^2] (component-normalised Y, l_max_sh >= l_max), radial [E, num_basis],
    z [N, embed_dim], center [E] in [0, n), neighbor [E] in [0, N), num_centers n (-1: N)) -> [n, out_dim]
    invariant features of the first n atoms.

    Args:
        l_max: largest l of the density (0 = radial only).
        channels: number of radial channels K (the output has K (K + 1) / 2 (l_max + 1) invariants before the
            linear layer).
        num_basis: number of radial basis functions.
        embed_dim: size of the species embedding z.
        avg_num_neighbors: normaliser of the neighbour sum.
        out_dim: output width (the scalar channels of the node features).
    """

    pairs: List[Tuple[int, int]]

    def __init__(self, l_max: int, channels: int, num_basis: int, embed_dim: int, avg_num_neighbors: float,
                 out_dim: int):
        super().__init__()
        self.l_max, self.channels = int(l_max), int(channels)
        self.radial = nn.Linear(num_basis, channels, bias=False)
        self.species = nn.Linear(embed_dim, channels)
        self.inv_avg = 1.0 / float(avg_num_neighbors)
        self.pairs = [(a, b) for a in range(channels) for b in range(a, channels)]
        idx = torch.tensor(self.pairs, dtype=torch.long)
        self.register_buffer("left", idx[:, 0].clone(), persistent=False)
        self.register_buffer("right", idx[:, 1].clone(), persistent=False)
        self.out = nn.Linear(len(self.pairs) * (self.l_max + 1), out_dim)

    def forward(self, sh: torch.Tensor, radial: torch.Tensor, z: torch.Tensor, center: torch.Tensor,
                neighbor: torch.Tensor, num_centers: int = -1) -> torch.Tensor:
        return self.out(self.invariants(sh, radial, z, center, neighbor, num_centers))

    def invariants(self, sh: torch.Tensor, radial: torch.Tensor, z: torch.Tensor, center: torch.Tensor,
                   neighbor: torch.Tensor, num_centers: int = -1) -> torch.Tensor:
        """B before the linear layer: [n, (l_max + 1) K (K + 1) / 2], l-major, then the pairs (k <= k')."""
        num_sh = (self.l_max + 1) * (self.l_max + 1)
        r = self.radial(radial) * gather(self.species(z), neighbor)  # [E, K]
        edge = (r.unsqueeze(-1) * sh[:, None, :num_sh]).reshape(r.shape[0], self.channels * num_sh)
        a = scatter_sum(edge, center, z.shape[0] if num_centers < 0 else num_centers)
        a = (a * self.inv_avg).reshape(-1, self.channels, num_sh)
        invariants: List[torch.Tensor] = []
        for l in range(self.l_max + 1):
            block = a[:, :, l * l:(l + 1) * (l + 1)]  # [N, K, 2l+1]
            prod = (block.index_select(1, self.left) * block.index_select(1, self.right)).sum(-1)
            invariants.append(prod / ((2 * l + 1) ** 0.5))
        return torch.cat(invariants, dim=-1)
