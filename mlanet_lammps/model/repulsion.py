"""Short-range repulsion prior: the ZBL universal screened nuclear repulsion, switched off smoothly.

Training data rarely holds atoms closer than their bond lengths, so a learned potential can be attractive there and
MD can collapse two atoms onto each other. The ZBL pair term (Ziegler, Biersack, Littmark, *The Stopping and Range of
Ions in Solids*, 1985) supplies the physical wall; the network learns the rest of the energy.

    V(r) = k_e Z_i Z_j / r * phi(r / a),  a = 0.46850 / (Z_i^0.23 + Z_j^0.23) Å,  k_e = 14.399645 eV Å
    phi(x) = 0.18175 e^(-3.19980 x) + 0.50986 e^(-0.94229 x) + 0.28022 e^(-0.40290 x) + 0.02817 e^(-0.20162 x)

It is multiplied by the polynomial cutoff f(r / r_sw) of `radial.polynomial_cutoff` (p = 6), r_sw = sum of the two
covalent radii (ASE's table), capped at the model cutoff, so V f and its first two derivatives vanish at r_sw and the
prior does not touch bonded geometries beyond it. Each directed edge i -> j adds V f / 2 to E_i: the energy stays a sum
of per-atom terms of the neighbourhood (exact under LAMMPS domain decomposition).
"""

from typing import List

import torch
from ase.data import covalent_radii
from torch import nn

from .radial import polynomial_cutoff

COULOMB_EV_A = 14.399645  # e^2 / (4 pi eps0) in eV Å
SCREENING_LENGTH_A = 0.46850  # Å (Bohr radius times 0.8854)
PHI_COEFFS = (0.18175, 0.50986, 0.28022, 0.02817)
PHI_EXPONENTS = (3.19980, 0.94229, 0.40290, 0.20162)
SWITCH_P = 6.0


class ZBLRepulsion(nn.Module):
    """Per-atom ZBL repulsion energies (eV).

    forward(dist, species, center, neighbor) -> [N]
      dist:     [E] edge lengths r_ij in Å (> 0)
      species:  [N] species index (position in `atomic_numbers`)
      center, neighbor: [E] atom indices i and j of each directed edge
    """

    def __init__(self, atomic_numbers: List[int], cutoff: float):
        super().__init__()
        z = torch.tensor(atomic_numbers, dtype=torch.float64)  # exact tables; model.to(dtype) rounds them once
        radii = torch.tensor([float(covalent_radii[n]) for n in atomic_numbers], dtype=z.dtype)
        # [S, S] pair tables, rebuilt from the atomic numbers (not stored in checkpoints)
        self.register_buffer("charge_product", COULOMB_EV_A * z[:, None] * z[None, :], persistent=False)
        zp = z.pow(0.23)
        self.register_buffer("inv_screening", (zp[:, None] + zp[None, :]) / SCREENING_LENGTH_A, persistent=False)
        self.register_buffer("switch_radius", (radii[:, None] + radii[None, :]).clamp(max=cutoff), persistent=False)
        self.switch_p = SWITCH_P
        self.register_buffer("phi_coeffs", torch.tensor(PHI_COEFFS, dtype=z.dtype), persistent=False)
        self.register_buffer("phi_exponents", torch.tensor(PHI_EXPONENTS, dtype=z.dtype), persistent=False)

    def pair_energy(self, dist: torch.Tensor, si: torch.Tensor, sj: torch.Tensor) -> torch.Tensor:
        """[E] switched ZBL energy V(r) f(r / r_sw) in eV of each pair (species indices si, sj: [E])."""
        x = dist * self.inv_screening[si, sj]
        phi = (self.phi_coeffs * torch.exp(-self.phi_exponents * x.unsqueeze(-1))).sum(-1)
        switch = polynomial_cutoff(dist / self.switch_radius[si, sj], self.switch_p)
        return self.charge_product[si, sj] / dist * phi * switch

    def forward(self, dist: torch.Tensor, species: torch.Tensor, center: torch.Tensor,
                neighbor: torch.Tensor) -> torch.Tensor:
        pair = self.pair_energy(dist, species.index_select(0, center), species.index_select(0, neighbor))
        out = torch.zeros(species.shape[0], dtype=dist.dtype, device=dist.device)
        return out.index_add(0, center, 0.5 * pair)
