"""The TorchScript module LAMMPS runs: MLANet on one rank's ghost-augmented pair list, with ghost-depth pruning."""

from typing import Tuple

import torch
from torch import nn

from ..model.forces import EnergyAndEdgeGradient
from ..model.mlanet import MLANet


def hop_distance(pair_i: torch.Tensor, pair_j: torch.Tensor, ntotal: int, nlocal: int, depth: int) -> torch.Tensor:
    """Graph distance (in pairs, capped at `depth`) of every atom from the local atoms 0..nlocal-1.

    pair_i/pair_j: [P] atom indices of the directed pairs i -> j (j neighbour of i). Returns [ntotal] long.
    """
    hop = torch.full((ntotal,), depth, dtype=torch.long, device=pair_i.device)
    hop[:nlocal] = 0
    for _ in range(depth - 1):
        hop = hop.scatter_reduce(0, pair_j, hop[pair_i] + 1, reduce="amin", include_self=True)
    return hop


class LammpsMLANet(nn.Module):
    """Evaluate MLANet for one LAMMPS rank.

    forward(rij [P,3] Å (x_j - x_i), pair_i [P], pair_j [P], species [ntotal], nlocal, prune)
      -> (atom_energy [ntotal] eV (meaningful for i < nlocal), fij [P,3] eV/Å = dE_local/d rij,
          pairs_evaluated: number of (pair, layer) evaluations)

    E_local is the sum of E_i over local atoms. With `prune`, layer k (1-based) only runs on pairs whose center is
    within num_layers - k hops of a local atom (the only ones that can reach a local energy); pairs centred further
    out get fij = 0. This is exact, and needs comm_modify cutoff >= num_layers * r_cut + skin.
    """

    def __init__(self, model: MLANet):
        super().__init__()
        self.num_layers = int(model.num_layers)
        self.energy_grad = EnergyAndEdgeGradient(model)

    def forward(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                nlocal: int, prune: bool) -> Tuple[torch.Tensor, torch.Tensor, int]:
        ntotal = species.shape[0]
        mask = (torch.arange(ntotal, device=species.device) < nlocal).to(rij.dtype)
        if not prune:
            edge_index = torch.stack([pair_i, pair_j])
            energy, fij = self.energy_grad(rij, species, edge_index, mask, None)
            return energy, fij, self.num_layers * int(rij.shape[0])
        hop = hop_distance(pair_i, pair_j, ntotal, nlocal, self.num_layers)
        keep = torch.nonzero(hop.index_select(0, pair_i) <= self.num_layers - 1).squeeze(-1)
        pi, pj = pair_i.index_select(0, keep), pair_j.index_select(0, keep)
        # compact the atoms to the local ones and those the kept pairs touch (node work scales with this set)
        used_mask = torch.zeros(ntotal, dtype=torch.bool, device=species.device)
        used_mask[:nlocal] = True
        used_mask[pi] = True
        used_mask[pj] = True
        used = torch.nonzero(used_mask).squeeze(-1)
        remap = torch.full((ntotal,), -1, dtype=torch.long, device=species.device)
        remap[used] = torch.arange(used.shape[0], device=species.device)
        edge_index = torch.stack([remap.index_select(0, pi), remap.index_select(0, pj)])
        sub_hop = hop.index_select(0, used)
        energy_used, fij_kept = self.energy_grad(rij.index_select(0, keep), species.index_select(0, used), edge_index,
                                                 mask.index_select(0, used), sub_hop)
        energy = torch.zeros(ntotal, dtype=rij.dtype, device=rij.device).index_copy_(0, used, energy_used)
        fij = torch.zeros_like(rij).index_copy_(0, keep, fij_kept)
        centre_hop = sub_hop.index_select(0, edge_index[0])
        evaluated = 0
        for k in range(self.num_layers):
            evaluated += int((centre_hop <= self.num_layers - 1 - k).sum())
        return energy, fij, evaluated
