"""MLANet's training step compiled by Inductor: energies and edge gradients whose weight gradients autograd can take.

The force loss differentiates forces, which are themselves gradients (F = -dE/dr), with respect to the weights.
torch.compile cannot compile a function that takes a gradient inside and is then differentiated again (AOTAutograd
has no double backward). So the function (weights, edges) -> (E_i, dE/d edge_vec) is first traced by make_fx into
one graph of plain ATen operations, the inner gradient included; to AOTAutograd that graph is first-order, and it
compiles the graph's forward and backward like any other. The inner gradient is taken by torch.func.grad:
torch.autograd.grad inside make_fx would record the saved outputs of exp, tanh, softmax, ... as detached, and the
weight gradients through them would be lost.

Graphs are padded to the high-water marks of their sizes (model/padding.py); one graph is traced and compiled per
set of padded sizes, which is a few per training run (tens of seconds to minutes each on a CPU; Inductor's disk
cache makes a second run with the same model and sizes start faster).
"""

from typing import Callable, Dict, Optional, Tuple

import torch
from torch import nn
from torch.fx.experimental.proxy_tensor import make_fx

from .compiled import inductor_options
from .mlanet import MLANet
from .padding import PaddedSizes


class CompiledTrainingGradient(nn.Module):
    """`EnergyAndEdgeGradient(model, create_graph=True)` through Inductor: the evaluator of a compiled training step.

    forward(edge_vec [E, 3] Å, species [N], edge_index [2, E]) -> (atom_energy [N] eV, edge_grad [E, 3] eV/Å,
    atom_uncertainty [0, 2]); atom_energy and edge_grad are differentiable with respect to the model's weights (not
    with respect to edge_vec, which is data in training). The weights stay those of `model`, which the optimiser
    updates; each call passes their current values into the compiled graph.

    Args:
        model: the MLANet being trained, built inside `compiled.traced_tensor_products()` (make_fx traces e3nn's
            torch.fx tensor products, not TorchScript ones).
        headroom: a new high-water mark of a padded size is this fraction above the size that set it.
        kernel_threads: threads of Inductor's generated CPU loops (default: torch.get_num_threads()).

    Example:
        >>> with traced_tensor_products():
        ...     model = MLANet(config)
        >>> atom_energy, edge_grad, _ = CompiledTrainingGradient(model)(edge_vec, species, edge_index)
        >>> loss(atom_energy, edge_grad).backward()  # weight gradients in model's parameters
    """

    def __init__(self, model: MLANet, headroom: float = 0.05, kernel_threads: Optional[int] = None):
        super().__init__()
        self.model = model
        self.sizes = PaddedSizes(far=2.0 * float(model.cutoff), headroom=headroom)
        self.options = inductor_options(kernel_threads)
        self.graphs: Dict[Tuple[int, int], Callable] = {}  # compiled graph per (padded edges, padded atoms)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({len(self.graphs)} compiled graphs, {self.sizes})"

    def energy_and_edge_grad(self, weights: Dict[str, torch.Tensor], edge_vec: torch.Tensor, species: torch.Tensor,
                             center: torch.Tensor, neighbor: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The function that is traced: model weights and buffers by name, a graph -> (atom_energy [N],
        edge_grad [E, 3])."""
        edge_index = torch.stack([center, neighbor])  # [2, E]

        def total(vec: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
            atom_energy = torch.func.functional_call(self.model, weights, (vec, species, edge_index))  # [N]
            return atom_energy.sum(), atom_energy

        edge_grad, atom_energy = torch.func.grad(total, has_aux=True)(edge_vec)  # [E, 3], [N]
        return atom_energy, edge_grad

    def graph(self, weights: Dict[str, torch.Tensor], *graph_inputs: torch.Tensor) -> Callable:
        """The compiled graph for these (padded) sizes, traced and compiled on first use."""
        key = (graph_inputs[0].shape[0], graph_inputs[1].shape[0])
        if key not in self.graphs:
            def traceable(weights, edge_vec, species, center, neighbor):  # make_fx needs a plain function
                return self.energy_and_edge_grad(weights, edge_vec, species, center, neighbor)

            values = {name: w.detach() for name, w in weights.items()}
            traced = make_fx(traceable)(values, *graph_inputs)
            self.graphs[key] = torch.compile(traced, dynamic=False, options=self.options)
        return self.graphs[key]

    def forward(self, edge_vec: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n, num_edges = species.shape[0], edge_vec.shape[0]
        vec, center, neighbor, real, _, rows = self.sizes.pad_graph("training", edge_vec.detach(), edge_index[0],
                                                                    edge_index[1], n, n)
        padded = (vec, self.sizes.pad_rows(species, real, rows), center, neighbor)
        weights = dict(self.model.named_parameters())
        weights.update(self.model.named_buffers())
        atom_energy, edge_grad = self.graph(weights, *padded)(weights, *padded)  # [N'], [E', 3]
        return atom_energy[:n], edge_grad[:num_edges], atom_energy.new_zeros(0, 2)
