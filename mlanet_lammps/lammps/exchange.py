"""Node features of ghost atoms received from the MPI ranks that own them, between message-passing layers.

Without this, a rank recomputes layer k for every ghost atom within (num_layers - k) x r_cut of its own atoms
(ghost-depth pruning, module.py): exact, but on small domains most of a rank's work is its neighbours' atoms.
Here every rank evaluates each layer on its own (local) atoms only, over the pairs centred on them:

  forward   h_k of a ghost = h_k of its owner, sent by the owner's rank (a periodic image of one of the rank's own
            atoms takes it from that atom); h_0 depends on the species alone and is computed locally.
  backward  dE/dh_k of a ghost is sent back to its owner and added to the owner's dE/dh_k before layer k - 1 is
            differentiated; dE/d rij of the local pairs then holds the derivative of the energy of every rank.

LAMMPS adds fij to atom i, subtracts it from j and reverse-communicates ghost forces, so forces and the virial
(sum over pairs of rij x fij) are those of the global energy. Each exchange is one MPI Alltoallv on LAMMPS'
communicator; the owners are found from atom IDs (one Allgatherv of the local IDs when the ghosts change, i.e. after
reneighbouring). All ranks take part in every exchange, also ranks with no atoms.
"""

from typing import Any, List, Tuple

import numpy as np
import torch

from .images import id_positions


class GhostExchange:
    """Where each needed ghost's features come from, and the Alltoallv that moves them.

    Args:
        comm: mpi4py communicator of the LAMMPS instance (collective: every rank builds its exchange together).
        local_ids: [nlocal] atom IDs of the rank's own atoms, in LAMMPS' local order.
        ghost_ids: [G] atom IDs of the ghost atoms whose features the rank needs (rows of the ghost block).
        device: where the features live (the index tensors are kept there).
    """

    def __init__(self, comm: Any, local_ids: np.ndarray, ghost_ids: np.ndarray, device: torch.device):
        self.comm = comm
        rank, size = comm.Get_rank(), comm.Get_size()
        counts = np.array(comm.allgather(len(local_ids)), dtype=np.int64)
        all_ids = np.empty(int(counts.sum()), dtype=np.int64)
        comm.Allgatherv(np.ascontiguousarray(local_ids, dtype=np.int64), [all_ids, counts])
        owner_rank = np.repeat(np.arange(size), counts)
        owner_index = np.arange(len(all_ids)) - np.repeat(np.cumsum(counts) - counts, counts)
        pos = id_positions(all_ids, ghost_ids)
        if np.any(pos < 0):
            missing = ghost_ids[pos < 0][:3].tolist()
            raise RuntimeError(f"ghost atom IDs {missing} are owned by no rank; LAMMPS atom IDs must be unique "
                               "(do not use atom_modify id no with this model)")
        g_rank, g_index = owner_rank[pos], owner_index[pos]
        self.num_ghosts = len(ghost_ids)

        def on_device(index: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(index, dtype=np.int64)).to(device)

        self.self_rows = on_device(np.flatnonzero(g_rank == rank))
        self.self_source = on_device(g_index[g_rank == rank])
        remote = np.flatnonzero(g_rank != rank)
        remote = remote[np.argsort(g_rank[remote], kind="stable")]  # grouped by owner rank, as Alltoallv delivers
        self.recv_rows = on_device(remote)
        self.recv_counts = np.bincount(g_rank[remote], minlength=size).astype(np.int64)
        self.send_counts = np.array(comm.alltoall(self.recv_counts.tolist()), dtype=np.int64)
        send_index = np.empty(int(self.send_counts.sum()), dtype=np.int64)
        comm.Alltoallv([np.ascontiguousarray(g_index[remote]), self.recv_counts], [send_index, self.send_counts])
        self.send_index = on_device(send_index)

    def _alltoallv(self, rows: torch.Tensor, send_counts: np.ndarray, recv_counts: np.ndarray) -> torch.Tensor:
        """rows [sum(send_counts), F] grouped by destination rank -> [sum(recv_counts), F] grouped by source."""
        width = rows.shape[1]
        send = np.ascontiguousarray(rows.detach().to("cpu").numpy())
        recv = np.empty((int(recv_counts.sum()), width), dtype=send.dtype)
        self.comm.Alltoallv([send, send_counts * width], [recv, recv_counts * width])
        return torch.from_numpy(recv).to(rows.device)

    def forward(self, local: torch.Tensor) -> torch.Tensor:
        """Features of the rank's atoms [nlocal, F] -> features of the needed ghosts [G, F] (detached)."""
        local = local.detach()
        out = local.new_empty((self.num_ghosts, local.shape[1]))
        out[self.self_rows] = local[self.self_source]
        out[self.recv_rows] = self._alltoallv(local[self.send_index], self.send_counts, self.recv_counts)
        return out

    def reverse(self, ghost_grad: torch.Tensor, nlocal: int) -> torch.Tensor:
        """dE/d(ghost features) [G, F] -> their sum onto the owners, for this rank's atoms [nlocal, F]."""
        out = ghost_grad.new_zeros((nlocal, ghost_grad.shape[1]))
        out.index_add_(0, self.self_source, ghost_grad[self.self_rows])
        received = self._alltoallv(ghost_grad[self.recv_rows], self.recv_counts, self.send_counts)
        return out.index_add_(0, self.send_index, received)


def _grad(outputs: torch.Tensor, inputs: List[torch.Tensor], grad_outputs: torch.Tensor) -> List[torch.Tensor]:
    """d<outputs, grad_outputs>/d inputs (vector-Jacobian product), zeros for inputs it does not reach."""
    grads = torch.autograd.grad([outputs], inputs, [grad_outputs], allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs)]


class Chunk:
    """The pairs centred on local atoms [first, last) and the atoms they touch, renumbered from 0.

    pairs [Pc] indices into the rank's pairs; nodes [Nc] sorted atom indices (the chunk's atoms, then the others it
    reaches, in index order); center/neighbor [Pc] positions in nodes; rows [last - first] positions of the chunk's
    atoms in nodes."""

    def __init__(self, first: int, last: int, center: torch.Tensor, neighbor: torch.Tensor):
        self.first, self.last = first, last
        self.pairs = torch.nonzero((center >= first) & (center < last)).squeeze(-1)
        own = torch.arange(first, last, device=center.device)
        self.nodes = torch.unique(torch.cat([own, neighbor.index_select(0, self.pairs)]))
        self.center = torch.searchsorted(self.nodes, center.index_select(0, self.pairs))
        self.neighbor = torch.searchsorted(self.nodes, neighbor.index_select(0, self.pairs))
        self.rows = torch.searchsorted(self.nodes, own)


def exchanged_energy_and_forces(model: Any, exchange: GhostExchange, rij: torch.Tensor, center: torch.Tensor,
                                neighbor: torch.Tensor, species: torch.Tensor, nlocal: int, max_pairs: int = 0
                                ) -> Tuple[torch.Tensor, torch.Tensor]:
    """One rank's share of MLANet with ghost features exchanged between layers (collective over the ranks).

    model: the (scripted) MLANet, run stage by stage (edge_features, node_features, interaction, atom_energy).
    rij [P,3] Å: the pairs centred on the rank's atoms; center [P] < nlocal; neighbor [P] in [0, nlocal + G)
    (ghost g of `exchange` is atom nlocal + g); species [nlocal + G].
    max_pairs: memory budget in (pair, layer) evaluations held at once, 0 for none. Within it every layer keeps its
    autograd graph from the forward to the backward pass. Beyond it, each layer runs over chunks of consecutive local
    atoms with at most max_pairs / num_layers pairs, without autograd in the forward pass and again with it, chunk by
    chunk, in the backward pass (per-layer checkpointing): exact, one extra forward pass, at most the memory of the
    whole budget. Smaller evaluations also run faster per pair on the CPU: 12,288 water atoms on one rank took 4.9 s
    per LAMMPS step in checkpointed chunks of 213,000 pairs, against 6.1 s for whole-model chunks of 300,000
    (pair, layer) evaluations that recompute chunk borders (27 Nov, 2-core VM).
    Returns (E_i [nlocal] eV, fij [P,3] eV/Å = dE/d rij of the energy summed over all ranks).
    """
    num_layers, num_pairs = int(model.num_layers), int(rij.shape[0])
    keep = max_pairs <= 0 or num_layers * num_pairs <= max_pairs
    num_chunks = 1 if keep else min(-(-num_layers * num_pairs // max_pairs), max(nlocal, 1))
    bounds = [round(c * nlocal / num_chunks) for c in range(num_chunks + 1)]
    chunks = [Chunk(bounds[c], bounds[c + 1], center, neighbor) for c in range(num_chunks)]
    rij = rij.detach()

    def layer(k: int, h: torch.Tensor, chunk: Chunk) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Layer k on one chunk -> (its atoms' new features, the leaves to differentiate: pair vectors, and the
        input features of the chunk's nodes for k > 0)."""
        leaves = [rij.index_select(0, chunk.pairs).requires_grad_(torch.is_grad_enabled())]
        h_nodes = h.index_select(0, chunk.nodes)
        if k > 0:
            leaves.append(h_nodes.requires_grad_(torch.is_grad_enabled()))
        sh, radial, env, _ = model.edge_features(leaves[0])
        out = model.interaction(k, h_nodes, z.index_select(0, chunk.nodes), sh, radial, env, chunk.center,
                                chunk.neighbor)
        return out.index_select(0, chunk.rows), leaves

    with torch.no_grad():
        z, h = model.node_features(species)
    inputs: List[torch.Tensor] = []  # h_k of the local atoms and ghosts, input of layer k
    features: List[torch.Tensor] = []  # h_{k+1} of the local atoms, a leaf: read by the readout
    kept: List[Tuple[torch.Tensor, List[torch.Tensor]]] = []  # (output, leaves) of each layer when keep
    for k in range(num_layers):
        if k > 0:
            h = torch.cat([features[-1].detach(), exchange.forward(features[-1])])
        inputs.append(h)
        with torch.set_grad_enabled(keep):
            outs = [layer(k, h, chunk) for chunk in chunks]
        if keep:
            kept.append(outs[0])
        features.append(torch.cat([o for o, _ in outs]).detach().requires_grad_(True))
    with torch.enable_grad():
        rij_all = rij.detach().requires_grad_(True)
        dist = torch.linalg.norm(rij_all, dim=-1)
        energy = model.atom_energy([f[:, :model.num_scalars] for f in features], species, dist, center, neighbor)
        *grad_h, fij = _grad(energy, features + [rij_all], torch.ones_like(energy))
        for k in range(num_layers - 1, -1, -1):
            grad_in = torch.zeros_like(inputs[k])
            for c, chunk in enumerate(chunks):
                out, leaves = kept[k] if keep else layer(k, inputs[k], chunk)
                grads = _grad(out, leaves, grad_h[k][chunk.first:chunk.last])
                fij.index_add_(0, chunk.pairs, grads[0])
                if k > 0:
                    grad_in.index_add_(0, chunk.nodes, grads[1])
            if k > 0:
                grad_h[k - 1] = grad_h[k - 1] + grad_in[:nlocal] + exchange.reverse(grad_in[nlocal:], nlocal)
    return energy.detach(), fij
