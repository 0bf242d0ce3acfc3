"""The TorchScript module LAMMPS runs: MLANet on one rank's ghost-augmented pair list, with ghost-depth pruning."""

from typing import List, Tuple

import torch
from torch import nn

from ..model.forces import EnergyAndEdgeGradient
from ..model.mlanet import MLANet


def hop_distance(pair_i: torch.Tensor, pair_j: torch.Tensor, seed: torch.Tensor, depth: int) -> torch.Tensor:
    """Graph distance (in pairs, capped at `depth`) of every atom from the seed atoms.

    pair_i/pair_j: [P] atom indices of the directed pairs i -> j (j neighbour of i); seed: [ntotal] bool.
    Returns [ntotal] long.
    """
    hop = torch.full(seed.shape, depth, dtype=torch.long, device=pair_i.device).masked_fill(seed, 0)
    for _ in range(depth - 1):
        hop = hop.scatter_reduce(0, pair_j, hop[pair_i] + 1, reduce="amin", include_self=True)
    return hop


class LammpsMLANet(nn.Module):
    """Evaluate MLANet for one LAMMPS rank.

    forward(rij [P,3] Å (x_j - x_i), pair_i [P], pair_j [P], species [ntotal], nlocal, prune, max_pairs)
      -> (atom_energy [ntotal] eV (meaningful for i < nlocal), fij [P,3] eV/Å = dE_local/d rij,
          pairs_evaluated: number of (pair, layer) evaluations)

    E_local is the sum of E_i over local atoms. With `prune`, layer k (1-based) only runs on pairs whose center is
    within num_layers - k hops of a local atom (the only ones that can reach a local energy); pairs centred further
    out get fij = 0. This is exact, and needs comm_modify cutoff >= num_layers * r_cut + skin.

    Memory: with `prune` and max_pairs > 0, the local atoms are split into consecutive index ranges ("chunks"),
    halved until each chunk's evaluation (its halo included) has at most max_pairs (pair, layer) evaluations or is a
    single atom; chunk c contributes d(sum_{i in c} E_i)/d rij, and the sum over chunks is the same fij. The autograd
    memory is then that of one chunk; the price is that pairs near chunk borders are evaluated once per chunk that
    needs them. LAMMPS sorts atoms by spatial bins, so consecutive indices are slabs of bins. Without `prune`
    max_pairs is ignored.
    """

    def __init__(self, model: MLANet):
        super().__init__()
        self.num_layers = int(model.num_layers)
        self.energy_grad = EnergyAndEdgeGradient(model)

    def forward(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                nlocal: int, prune: bool, max_pairs: int = 0) -> Tuple[torch.Tensor, torch.Tensor, int]:
        ntotal = species.shape[0]
        index = torch.arange(ntotal, device=species.device)
        local = index < nlocal
        if not prune:
            edge_index = torch.stack([pair_i, pair_j])
            energy, fij = self.energy_grad(rij, species, edge_index, local.to(rij.dtype), None)
            return energy, fij, self.num_layers * int(rij.shape[0])
        hop = hop_distance(pair_i, pair_j, local, self.num_layers)
        if max_pairs <= 0 or nlocal <= 1 or self.pair_evaluations(hop, pair_i) <= max_pairs:
            return self.evaluate(rij, pair_i, pair_j, species, local, hop)
        energy = torch.zeros(ntotal, dtype=rij.dtype, device=rij.device)
        fij = torch.zeros_like(rij)
        evaluated = 0
        ranges: List[Tuple[int, int]] = [(nlocal // 2, nlocal), (0, nlocal // 2)]  # the whole does not fit
        while len(ranges) > 0:
            first, last = ranges.pop()
            seed = (index >= first) & (index < last)
            hop = hop_distance(pair_i, pair_j, seed, self.num_layers)
            if last - first > 1 and self.pair_evaluations(hop, pair_i) > max_pairs:
                middle = (first + last) // 2
                ranges.append((middle, last))
                ranges.append((first, middle))
                continue
            energy_c, fij_c, evaluated_c = self.evaluate(rij, pair_i, pair_j, species, seed, hop)
            energy = torch.where(seed, energy_c, energy)
            fij = fij + fij_c
            evaluated += evaluated_c
        return energy, fij, evaluated

    def pair_evaluations(self, hop: torch.Tensor, pair_i: torch.Tensor) -> int:
        """(pair, layer) evaluations of a pruned call whose atoms are `hop` [ntotal] hops from the seed atoms."""
        centre_hop = hop.index_select(0, pair_i)
        evaluated = 0
        for k in range(self.num_layers):
            evaluated += int((centre_hop <= self.num_layers - 1 - k).sum())
        return evaluated

    def evaluate(self, rij: torch.Tensor, pair_i: torch.Tensor, pair_j: torch.Tensor, species: torch.Tensor,
                 seed: torch.Tensor, hop: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, int]:
        """Pruned evaluation of d(sum_{seed} E_i)/d rij; `hop` [ntotal] from hop_distance(.., seed, ..).
        Returns (atom_energy [ntotal], meaningful on the seed atoms; fij [P,3]; (pair, layer) evaluations)."""
        ntotal = species.shape[0]
        keep = torch.nonzero(hop.index_select(0, pair_i) <= self.num_layers - 1).squeeze(-1)
        pi, pj = pair_i.index_select(0, keep), pair_j.index_select(0, keep)
        # compact the atoms to the seed ones and those the kept pairs touch (node work scales with this set)
        used_mask = seed.clone()
        used_mask[pi] = True
        used_mask[pj] = True
        used = torch.nonzero(used_mask).squeeze(-1)
        remap = torch.full((ntotal,), -1, dtype=torch.long, device=species.device)
        remap[used] = torch.arange(used.shape[0], device=species.device)
        edge_index = torch.stack([remap.index_select(0, pi), remap.index_select(0, pj)])
        sub_hop = hop.index_select(0, used)
        energy_used, fij_kept = self.energy_grad(rij.index_select(0, keep), species.index_select(0, used), edge_index,
                                                 seed.index_select(0, used).to(rij.dtype), sub_hop)
        energy = torch.zeros(ntotal, dtype=rij.dtype, device=rij.device).index_copy_(0, used, energy_used)
        fij = torch.zeros_like(rij).index_copy_(0, keep, fij_kept)
        return energy, fij, self.pair_evaluations(sub_hop, edge_index[0])
