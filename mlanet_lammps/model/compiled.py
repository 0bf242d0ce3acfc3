"""MLANet energies and edge gradients through torch.compile (Inductor), for fast inference in ASE.

Inductor fuses MLANet's many small per-edge operations into a few loops. It is compiled for static shapes, because
dynamic shapes do not lower for this model, so the edge list is padded to a high-water mark: a padded edge points
from atom 0 to itself at 2 r_cut, where the envelope, the radial basis, every pooling weight and the ZBL switch are
exactly zero, so it adds nothing to any energy. A new mark (the edge count grew past it) or a new atom count
compiles again (tens of seconds on a CPU). The energy and its gradient are one function (torch.func.grad) compiled
under no_grad into one inference graph: no autograd tape at run time, and Inductor's freezing folds the weights in
as constants. On this project's 2-core VM that kept the speed of a compiled forward + autograd backward and lowered
the peak memory of 5,184 water atoms from 2.7 to 2.3 GB. Training needs the force gradients' own gradients (double
backward), which torch.compile does not provide, so it stays eager. The ASE calculator builds its pairs in mirrored
order, so that the distances, radial basis, radial MLPs and spherical harmonics are computed once per pair rather
than once per directed edge: 224-232 against 249-251 µs/atom/step with 1 thread, 139-157 against 149-160 with 2
(192 water atoms, two rounds each).

Inductor's generated CPU loops run on `kernel_threads` threads (default: torch's thread count), with masked
("tail") vectorisation switched off when there is more than one. With it on, a loop over the 3 components of an
edge vector counts as 0 vector steps in Inductor's choice of the loop to parallelise, so the 8-32-long channel
sums of the gradients with respect to the spherical harmonics get an OpenMP region per edge (10,000 per step for
192 water atoms). On this project's 2-core VM, with 2 threads and the allocator settings of
mlanet_lammps/allocator.py, 192 water atoms took 149-153 µs/atom/step with 2 kernel threads (without tail
vectorisation) and 187-205 with 1; with tail vectorisation, 2 kernel threads took twice as long as 1.
"""

import math
from typing import Optional

import e3nn
import torch
from torch import nn

from .mlanet import MLANet
from .uncertainty import require_head


def traceable_copy(model: MLANet) -> MLANet:
    """The same network, built with e3nn's tensor products left as torch.fx modules (which torch.compile traces)
    instead of TorchScript ones; same dtype, device, weights and uncertainty head, no parameter gradients."""
    defaults = e3nn.get_optimization_defaults()
    e3nn.set_optimization_defaults(jit_script_fx=False)
    try:
        copy = MLANet(model.config)
    finally:
        e3nn.set_optimization_defaults(**defaults)
    weight = next(model.parameters())
    copy = copy.to(dtype=weight.dtype, device=weight.device)
    copy.load_state_dict(model.state_dict())
    for head in model.uncertainty:  # its buffers are not in the state dict
        copy.attach_uncertainty(head)
    return copy.eval().requires_grad_(False)


class CompiledEnergyAndEdgeGradient(nn.Module):
    """Drop-in for `EnergyAndEdgeGradient` (inference only, no ghosts): forward(edge_vec [E,3] Å, species [N],
    edge_index [2,E]) -> (atom_energy [N] eV, edge_grad [E,3] eV/Å, atom_uncertainty [N, 2] or [0, 2]).

    Edges in mirrored order (data.graph.build_graph(mirrored=True), detected exactly) are evaluated once per pair
    for their radial terms and harmonics; each pair's gradient is then returned on its first edge (zero on the
    reversed one), which gives the same forces and virial as the per-edge gradients.

    Args:
        model: a trained MLANet (its dtype and device are kept).
        headroom: a new high-water mark is this fraction above the edge count that set it, so that edges crossing
            the cutoff during MD do not compile again.
        kernel_threads: threads of Inductor's generated CPU loops (default: torch.get_num_threads(); see above).
        uncertainty: also return the per-atom uncertainties of the model's head (evaluated eagerly on the compiled
            graph's readout features).
    """

    def __init__(self, model: MLANet, headroom: float = 0.05, kernel_threads: Optional[int] = None,
                 uncertainty: bool = False):
        super().__init__()
        if uncertainty:
            require_head(model)
        self.model = traceable_copy(model)
        self.uncertainty = uncertainty
        threads = torch.get_num_threads() if kernel_threads is None else int(kernel_threads)
        self.compiled = torch.compile(self.energy_and_gradient, dynamic=False, options={
            "cpp.threads": threads, "cpp.enable_loop_tail_vec": threads == 1, "freezing": True})
        self.headroom = float(headroom)
        self.far = 2.0 * float(model.cutoff)
        self.capacity = {False: 0, True: 0}  # high-water marks of evaluated edges: all / one per mirrored pair

    def energy_and_gradient(self, edge_vec: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor,
                            mirrored: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(atom_energy [N] eV, d(sum of atom energies)/d edge_vec [E, 3] eV/Å, readout features [N, H]), as one
        function of the
        inputs (torch.func.grad) that torch.compile turns into one inference graph. mirrored: edge_vec holds one
        vector per pair and edge_index [2, 2E] the pairs, then the same pairs reversed."""

        def total(vec: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
            edges = torch.cat([vec, -vec]) if mirrored else vec
            atom_energy, features = self.model.energy_and_features(edges, species, edge_index, mirrored=mirrored)
            return atom_energy.sum(), (atom_energy, features)

        grad, (atom_energy, features) = torch.func.grad(total, has_aux=True)(edge_vec)
        return atom_energy, grad, features

    def forward(self, edge_vec: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        num_edges, half = edge_vec.shape[0], edge_vec.shape[0] // 2
        mirrored = (half > 0 and num_edges == 2 * half and torch.equal(edge_index[:, half:], edge_index[[1, 0], :half])
                    and torch.equal(edge_vec[half:], -edge_vec[:half]))
        rows = half if mirrored else num_edges
        if rows > self.capacity[mirrored]:
            self.capacity[mirrored] = 64 * math.ceil(rows * (1.0 + self.headroom) / 64)
        pad = self.capacity[mirrored] - rows if species.shape[0] > 0 else 0
        far = edge_vec.new_zeros(pad, 3)
        far[:, 2] = self.far
        vec = torch.cat([edge_vec[:rows].detach(), far])
        index = torch.cat([edge_index[:, :rows], edge_index.new_zeros(2, pad)], dim=1)
        if mirrored:
            index = torch.cat([index, index.flip(0)], dim=1)
        with torch.no_grad():
            atom_energy, grad, features = self.compiled(vec, species, index, mirrored)
            uncertainty = (self.model.atom_uncertainty(features, species) if self.uncertainty
                           else atom_energy.new_zeros(0, 2))
        grad = grad[:rows]
        # a mirrored pair's whole gradient goes to its first edge: the same forces and virial
        return atom_energy, torch.cat([grad, torch.zeros_like(grad)]) if mirrored else grad, uncertainty
