"""The ghost exchange of one LAMMPS rank: which atom each of its ghost atoms copies, and moving features to them.

A LAMMPS rank holds its own (local) atoms, rows [0, nlocal), and ghost atoms, rows [nlocal, ntotal): periodic
images of its own atoms or copies of atoms that other ranks own. Atom IDs say which atom a ghost copies. The
exchange implements the model's `GhostExchange` interface (model/ghosts.py): forward copies each owner's row to its
ghosts, reverse sums the ghosts' rows onto their owners. Ghosts whose owner is on the same rank (all of them on one
rank) are a gather / index-add; the others go through one MPI Alltoallv on LAMMPS' communicator each way. The plan
covers every ghost LAMMPS holds, so it stays valid until LAMMPS reneighbours.
"""

from typing import Any, Optional

import numpy as np
import torch

from .errors import MLANetLammpsError


def id_positions(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Position in `ids` [N] (unique atom IDs) of each of the `wanted` [M] IDs, -1 where absent; [M] int64."""
    if len(ids) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    where = np.minimum(np.searchsorted(ids[order], wanted), len(ids) - 1)
    return np.where(ids[order][where] == wanted, order[where], -1).astype(np.int64)


def duplicate_ids(ids: np.ndarray) -> np.ndarray:
    """The atom IDs that occur more than once in `ids`, sorted."""
    values, counts = np.unique(ids, return_counts=True)
    return values[counts > 1]


class GhostExchange:
    """Owners of a rank's ghost atoms and the feature exchange with them (collective when `comm` is given).

    Args:
        ids: [ntotal] LAMMPS atom IDs of the rank's local atoms, then its ghosts.
        nlocal: number of local atoms.
        comm: mpi4py communicator of the LAMMPS instance, or None on one rank (every owner is local).
        device: where the features live (the index tensors are built there once).

    Raises MLANetLammpsError (on every rank alike) for duplicate atom IDs and for a ghost whose atom no rank owns.

    Example:
        >>> exchange = GhostExchange(ids, nlocal, None, torch.device("cpu"))
        >>> pair_j = exchange.node_of[pair_j]  # rows of the node features [len(exchange.rows), F]
        >>> exchange.forward_exchange(src, dst, src.shape[1])  # dst[nlocal:] = the owners' rows of src
    """

    def __init__(self, ids: np.ndarray, nlocal: int, comm: Optional[Any], device: torch.device):
        self.comm, self.nlocal, self.num_ghosts = comm, int(nlocal), len(ids) - int(nlocal)
        local_ids, ghost_ids = np.ascontiguousarray(ids[:nlocal], dtype=np.int64), ids[nlocal:]
        size = 1 if comm is None else comm.Get_size()
        if comm is None:
            all_ids = local_ids
        else:
            counts = np.array(comm.allgather(len(local_ids)), dtype=np.int64)
            all_ids = np.empty(int(counts.sum()), dtype=np.int64)
            comm.Allgatherv(local_ids, [all_ids, counts])
        twice = duplicate_ids(all_ids)
        if twice.size:
            raise MLANetLammpsError(f"atom IDs {twice[:3].tolist()} are used by more than one atom: the model takes "
                                    "ghost features from the atom with the ghost's ID, so IDs must be unique; "
                                    "renumber the atoms (reset_atoms id)")
        if comm is None:
            owner_rank, owner_index = np.zeros(len(all_ids), dtype=np.int64), np.arange(len(all_ids))
        else:
            owner_rank = np.repeat(np.arange(size), counts)
            owner_index = np.arange(len(all_ids)) - np.repeat(np.cumsum(counts) - counts, counts)
        pos = id_positions(all_ids, ghost_ids)
        missing = ghost_ids[pos < 0]
        if comm is not None:  # the same verdict on every rank
            missing = np.concatenate(comm.allgather(missing)).astype(np.int64)
        if missing.size:
            raise MLANetLammpsError(f"ghost atoms with IDs {missing[:3].tolist()} copy no atom of any rank: LAMMPS "
                                    "atom IDs must be on (do not use atom_modify id no) and consistent")
        g_rank, g_index = owner_rank[pos], owner_index[pos]
        rank = 0 if comm is None else comm.Get_rank()

        def on_device(index: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(index, dtype=np.int64)).to(device)

        remote = np.flatnonzero(g_rank != rank)
        remote = remote[np.argsort(g_rank[remote], kind="stable")]  # grouped by owner rank, as Alltoallv delivers
        node_of = np.arange(len(ids), dtype=np.int64)
        mine = np.flatnonzero(g_rank == rank)
        node_of[nlocal + mine] = g_index[mine]
        node_of[nlocal + remote] = nlocal + np.arange(len(remote))
        self.node_of = on_device(node_of)  # [ntotal] LAMMPS atom -> row of the node features
        self.rows = on_device(np.concatenate([np.arange(nlocal), nlocal + remote]))  # [nlocal + R] row -> LAMMPS atom
        self.recv_rows = on_device(nlocal + np.arange(len(remote)))
        self.recv_counts = np.bincount(g_rank[remote], minlength=size).astype(np.int64)
        if comm is None:
            self.send_counts, send_index = self.recv_counts, np.zeros(0, dtype=np.int64)
        else:
            self.send_counts = np.array(comm.alltoall(self.recv_counts.tolist()), dtype=np.int64)
            send_index = np.empty(int(self.send_counts.sum()), dtype=np.int64)
            comm.Alltoallv([np.ascontiguousarray(g_index[remote]), self.recv_counts], [send_index, self.send_counts])
        self.send_index = on_device(send_index)  # local rows other ranks hold as ghosts, grouped by rank

    def _alltoallv(self, rows: torch.Tensor, send_counts: np.ndarray, recv_counts: np.ndarray) -> torch.Tensor:
        """rows [sum(send_counts), F] grouped by destination rank -> [sum(recv_counts), F] grouped by source."""
        width = rows.shape[1]
        send = np.ascontiguousarray(rows.detach().to("cpu").numpy())
        recv = np.empty((int(recv_counts.sum()), width), dtype=send.dtype)
        self.comm.Alltoallv([send, send_counts * width], [recv, recv_counts * width])
        return torch.from_numpy(recv).to(rows.device)

    def forward_exchange(self, src: torch.Tensor, dst: torch.Tensor, width: int) -> None:
        """src, dst [len(rows), width]: dst[:nlocal] = src[:nlocal]; each ghost row of dst = its owner's row of src
        on the owner's rank."""
        n = self.nlocal
        dst[:n] = src[:n]
        if self.comm is not None:
            dst[self.recv_rows] = self._alltoallv(src.index_select(0, self.send_index), self.send_counts,
                                                  self.recv_counts)

    def reverse_exchange(self, src: torch.Tensor, dst: torch.Tensor, width: int) -> None:
        """src, dst [len(rows), width]: dst[:nlocal] = src[:nlocal] + the src rows of every ghost copy of that atom
        on the other ranks; dst[nlocal:] = 0."""
        n = self.nlocal
        dst.zero_()
        dst[:n] = src[:n]
        if self.comm is not None:
            received = self._alltoallv(src.index_select(0, self.recv_rows), self.recv_counts, self.send_counts)
            dst.index_add_(0, self.send_index, received)

    def __repr__(self) -> str:
        ranks = 1 if self.comm is None else self.comm.Get_size()
        return (f"{self.__class__.__name__}(nlocal={self.nlocal}, ghosts={self.num_ghosts}, "
                f"folded={self.num_ghosts - self.recv_rows.numel()}, from_other_ranks={self.recv_rows.numel()}, "
                f"ranks={ranks})")
