"""MLANet energies and edge gradients through torch.compile (Inductor), for fast inference in ASE.

Inductor fuses MLANet's many small per-edge operations into a few loops. It is compiled for static shapes, because
dynamic shapes do not lower for this model, so the edge list is padded to a high-water mark: a padded edge points
from atom 0 to itself at 2 r_cut, where the envelope, the radial basis, every pooling weight and the ZBL switch are
exactly zero, so it adds nothing to any energy. A new mark (the edge count grew past it) or a new atom count
compiles again (tens of seconds on a CPU). Training needs the force gradients' own gradients (double backward),
which torch.compile does not provide, so it stays eager.

Inductor's generated CPU loops run on `kernel_threads` threads (1 by default); matrix products and scatters stay
ATen kernels on all of torch's threads. On this project's 2-core VM, with 2 threads, 192 water atoms took 207
µs/atom/step with 1 kernel thread and 330-350 with 2 (TorchScript: 226-238), because each of the ~140 parallel
loops per step pays a thread hand-off that costs more than its share of the work. Raise it on machines whose cores
are not shared.
"""

import math

import e3nn
import torch
from torch import nn

from .mlanet import MLANet


def traceable_copy(model: MLANet) -> MLANet:
    """The same network, built with e3nn's tensor products left as torch.fx modules (which torch.compile traces)
    instead of TorchScript ones; same dtype, device and weights, no parameter gradients."""
    defaults = e3nn.get_optimization_defaults()
    e3nn.set_optimization_defaults(jit_script_fx=False)
    try:
        copy = MLANet(model.config)
    finally:
        e3nn.set_optimization_defaults(**defaults)
    weight = next(model.parameters())
    copy = copy.to(dtype=weight.dtype, device=weight.device)
    copy.load_state_dict(model.state_dict())
    return copy.eval().requires_grad_(False)


class CompiledEnergyAndEdgeGradient(nn.Module):
    """Drop-in for `EnergyAndEdgeGradient` (inference only): forward(edge_vec [E,3] Å, species [N], edge_index [2,E],
    energy_mask [N]) -> (atom_energy [N] eV, edge_grad [E,3] eV/Å).

    Args:
        model: a trained MLANet (its dtype and device are kept).
        headroom: a new high-water mark is this fraction above the edge count that set it, so that edges crossing
            the cutoff during MD do not compile again.
        kernel_threads: threads of Inductor's generated CPU loops (see above).
    """

    def __init__(self, model: MLANet, headroom: float = 0.05, kernel_threads: int = 1):
        super().__init__()
        self.model = traceable_copy(model)
        self.compiled = torch.compile(self.model, dynamic=False, options={"cpp.threads": int(kernel_threads)})
        self.headroom = float(headroom)
        self.far = 2.0 * float(model.cutoff)
        self.capacity = 0

    def forward(self, edge_vec: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor,
                energy_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        num_edges = edge_vec.shape[0]
        if num_edges > self.capacity:
            self.capacity = 64 * math.ceil(num_edges * (1.0 + self.headroom) / 64)
        pad = self.capacity - num_edges if species.shape[0] > 0 else 0
        far = edge_vec.new_zeros(pad, 3)
        far[:, 2] = self.far
        vec = torch.cat([edge_vec.detach(), far]).requires_grad_(True)
        index = torch.cat([edge_index, edge_index.new_zeros(2, pad)], dim=1)
        atom_energy = self.compiled(vec, species, index)
        grad = torch.autograd.grad([(atom_energy * energy_mask).sum()], [vec])[0]
        return atom_energy.detach(), grad[:num_edges]
