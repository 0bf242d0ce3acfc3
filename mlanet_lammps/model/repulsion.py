"""Short-range repulsion prior: the ZBL universal screened nuclear repulsion, switched off smoothly.

Training data rarely holds atoms closer than their bond lengths, so a learned potential can be attractive there and
MD can collapse two atoms onto each other. The ZBL pair term (Ziegler, Biersack, Littmark, *The Stopping and Range of
Ions in Solids*, 1985) supplies the physical wall; the network learns the rest of the energy.

    V(r) = k_e Z_i Z_j / r * phi(r / a),  a = 0.46850 / (Z_i^0.23 + Z_j^0.23) Å,  k_e = 14.399645 eV Å
    phi(x) = 0.18175 e^(-3.19980 x) + 0.50986 e^(-0.94229 x) + 0.28022 e^(-0.40290 x) + 0.02817 e^(-0.20162 x)

It is multiplied by the polynomial cutoff f(r / r_sw) of `radial.polynomial_cutoff` (p = 6), so V f and its first
two derivatives vanish at the switch radius r_sw. `switch_radii` picks r_sw per species pair from the training data:
0.9 x the shortest distance of that pair in them (at most twice the sum of the two covalent radii, ASE's table,
copied to model/elements.py), so the prior is exactly zero on every training structure, where the network has data,
and is a wall further in, where it has none. The 10% margin keeps it off structures like the training ones whose
closest pair happens to be a little closer (on formate/Cu validation frames an H-Cu pair 0.04 Å inside the training
minimum drew 0.27 eV/Å from a switch at the minimum itself). Pairs the data never bring within the cutoff get the
covalent-radii sum.

Why not the covalent sum for every pair: on the formate/Cu training frames the prior's forces then had an RMS of
1.9 eV/Å for the network to cancel (its force RMSE rose from 215 to 268 meV/Å), and in water, whose frames hold no
H-H pair closer than 1.4 Å, a wall that starts at 0.62 Å let two H atoms settle at 0.6-0.75 Å in NVT (an H2-like
pair the DFT data never show). Each directed edge i -> j adds V f / 2 to E_i: the energy stays a sum of per-atom
terms of the neighbourhood (exact under LAMMPS domain decomposition).
"""

from typing import List, Optional

import torch
from torch import nn

from .elements import COVALENT_RADII
from .radial import polynomial_cutoff
from .scatter import scatter_sum

COULOMB_EV_A = 14.399645  # e^2 / (4 pi eps0) in eV Å
SCREENING_LENGTH_A = 0.46850  # Å (Bohr radius times 0.8854)
PHI_COEFFS = (0.18175, 0.50986, 0.28022, 0.02817)
PHI_EXPONENTS = (3.19980, 0.94229, 0.40290, 0.20162)
SWITCH_P = 6.0
MAX_SWITCH_FACTOR = 2.0  # r_sw <= 2 x covalent-radii sum
SHORTEST_MARGIN = 0.9  # r_sw <= 0.9 x the pair's shortest training distance


def switch_radii(atomic_numbers: List[int], cutoff: float,
                 shortest: Optional[List[List[float]]] = None) -> List[List[float]]:
    """[S][S] switch radii r_sw in Å, at most `cutoff`.

    shortest: [S][S] shortest distance of each species pair in the training data (inf where a pair never comes within
    the cutoff). r_sw = min(0.9 x shortest, 2 x covalent-radii sum) for pairs in the data, the covalent-radii sum
    otherwise (and for every pair without `shortest`)."""
    radii = [COVALENT_RADII[z] for z in atomic_numbers]
    out = [[ri + rj for rj in radii] for ri in radii]
    if shortest is not None:
        out = [[min(SHORTEST_MARGIN * s, MAX_SWITCH_FACTOR * r) if s != float("inf") else r for r, s in zip(row, srow)]
               for row, srow in zip(out, shortest)]
    return [[min(r, cutoff) for r in row] for row in out]


class ZBLRepulsion(nn.Module):
    """Per-atom ZBL repulsion energies (eV).

    forward(dist, species, center, neighbor) -> [N]
      dist:     [E] edge lengths r_ij in Å (> 0)
      species:  [N] species index (position in `atomic_numbers`)
      center, neighbor: [E] atom indices i and j of each directed edge
    """

    def __init__(self, atomic_numbers: List[int], radii: List[List[float]]):
        """radii: [S][S] switch radii r_sw in Å (see `switch_radii`)."""
        super().__init__()
        z = torch.tensor(atomic_numbers, dtype=torch.float64)  # exact tables; model.to(dtype) rounds them once
        # [S, S] pair tables, rebuilt from the model configuration (not stored in checkpoints)
        self.register_buffer("charge_product", COULOMB_EV_A * z[:, None] * z[None, :], persistent=False)
        zp = z.pow(0.23)
        self.register_buffer("inv_screening", (zp[:, None] + zp[None, :]) / SCREENING_LENGTH_A, persistent=False)
        self.register_buffer("switch_radius", torch.tensor(radii, dtype=z.dtype), persistent=False)
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
        return scatter_sum(0.5 * pair, center, species.shape[0])
