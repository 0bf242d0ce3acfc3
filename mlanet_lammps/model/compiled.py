"""MLANet compiled by torch.compile (Inductor): the fast evaluator of LAMMPS and the ASE calculator.

`CompiledMLANet` is an MLANet whose evaluation runs through Inductor, which fuses the model's many small per-edge
operations into a few loops; `EnergyAndEdgeGradient` wraps it exactly as it wraps the eager model. (Training also
needs the weight gradients of the forces and compiles differently: model/compiled_training.py.) Forward and backward
are compiled together (AOTAutograd), so autograd gives dE/d edge_vec as usual, and LAMMPS' ghost exchange between layers
(model/ghosts.py) stays an eager step between two compiled graphs, with its own backward.

Inductor compiles for static shapes (dynamic shapes do not lower for this model), so every graph is padded to
high-water marks of its sizes (model/padding.py): edges, centre atoms and the other atoms. Padding changes no
energy or gradient, and a size that grows past its mark compiles once more (the new mark leaves room for 5% more
and for thermal fluctuations, so that MD does not recompile for pairs crossing the cutoff or atoms moving between
ranks).
Compiling takes tens of seconds on a CPU; Inductor caches the generated code on disk (TORCHINDUCTOR_CACHE_DIR), so
a later run with the same model and sizes loads it instead.

Two kinds of graph are compiled: the whole evaluation (`energy_and_features` without chunks), and one layer on one
checkpointed chunk (`chunk_layer`, MLANet's memory bound for large ranks), which every chunk of a layer shares.

Inductor's generated CPU loops run on `kernel_threads` threads (default: torch's thread count), with masked ("tail")
vectorisation switched off when there is more than one: with it, a loop over the 3 components of an edge vector
counts as no vector steps in Inductor's choice of the loop to parallelise, and short channel sums get an OpenMP region
per edge (docs/performance.md).
"""

from contextlib import contextmanager
from typing import Dict, Optional, Tuple

import e3nn
import torch

from .chunks import ChunkPlan
from .ghosts import GhostExchange
from .mlanet import MLANet, ModelConfig
from .padding import PaddedSizes

RECOMPILE_LIMIT = 64  # graphs per compiled function: whole or chunk, per layer, per set of marks
# AOTAutograd's activation memory budget for the compiled graphs: the fraction of the forward results the backward
# pass keeps (the rest it recomputes, cheapest first). At 0.8 it recomputes only fused elementwise work, which
# lowers the evaluation's peak memory at no measurable cost in time; below 0.8 it recomputes tensor products too and
# is slower (measurements: docs/performance.md).
ACTIVATION_MEMORY_BUDGET = 0.8


def inductor_options(kernel_threads: Optional[int] = None) -> Dict[str, object]:
    """torch.compile options of MLANet's graphs: `kernel_threads` threads for the generated CPU loops (default:
    torch.get_num_threads()), with masked tail vectorisation only on one thread."""
    threads = torch.get_num_threads() if kernel_threads is None else int(kernel_threads)
    return {"cpp.threads": threads, "cpp.enable_loop_tail_vec": threads == 1}


class PaddedExchange:
    """The model's ghost exchange seen through padding: rows [0, n) local atoms, [n, n_cap) padding, [n_cap,
    n_cap + G) ghosts, then padding. Padding rows receive zeros; the real rows go through `inner`. One instance per
    compiled model, updated in place, so that the compiled graphs see the same object every call."""

    def __init__(self):
        self.inner: Optional[GhostExchange] = None
        self.real = torch.zeros(0, dtype=torch.long)

    def update(self, inner: GhostExchange, real: torch.Tensor) -> None:
        """inner: the exchange of the unpadded rows; real [n + G]: their positions among the padded rows."""
        self.inner, self.real = inner, real

    def _through(self, step, src: torch.Tensor, dst: torch.Tensor, width: int) -> None:
        rows = src.index_select(0, self.real)  # [n + G, width]
        out = torch.empty_like(rows)
        step(rows, out, width)
        dst.zero_()
        dst.index_copy_(0, self.real, out)

    def forward_exchange(self, src: torch.Tensor, dst: torch.Tensor, width: int) -> None:
        self._through(self.inner.forward_exchange, src, dst, width)

    def reverse_exchange(self, src: torch.Tensor, dst: torch.Tensor, width: int) -> None:
        self._through(self.inner.reverse_exchange, src, dst, width)


class CompiledMLANet(MLANet):
    """MLANet evaluated through torch.compile with padded static shapes (inference: no parameter gradients).

    Build it with `compiled_model(model)`; it takes the inputs and gives the outputs of MLANet.energy_and_features,
    with the same results to rounding (float64: 1e-12 relative).

    Args:
        config: the model's configuration.
        headroom: a new high-water mark is this fraction above the size that set it.
        kernel_threads: threads of Inductor's generated CPU loops (default: torch.get_num_threads()).

    Example:
        >>> evaluator = EnergyAndEdgeGradient(compiled_model(model))
        >>> atom_energy, edge_grad, _ = evaluator(edge_vec, species, edge_index)  # compiles on the first call
    """

    def __init__(self, config: ModelConfig, headroom: float = 0.05, kernel_threads: Optional[int] = None):
        super().__init__(config)
        self.sizes = PaddedSizes(far=2.0 * float(config.cutoff), headroom=headroom)
        self.padded_exchange = PaddedExchange()
        # each new mark is a new graph: let Dynamo keep compiling them rather than fall back to eager after 8
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
        options = inductor_options(kernel_threads)
        # the budget applies to the compilations of these two functions only (they compile inside their calls)
        budget = torch._functorch.config.patch(activation_memory_budget=ACTIVATION_MEMORY_BUDGET)
        self.whole_graph = budget(torch.compile(self._whole, dynamic=False, options=options))
        self.chunk_graph = budget(torch.compile(self._chunk, dynamic=False, options=options))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(layers={self.num_layers}, l_max={self.config.l_max}, {self.sizes})"

    def energy_and_features(self, edge_vec: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor,
                            mirrored: bool = False, num_local: int = -1, max_edges: int = 0
                            ) -> Tuple[torch.Tensor, torch.Tensor]:
        """MLANet.energy_and_features (same arguments and results) through the padded whole-evaluation graph; in
        chunks, MLANet's layer loop over the compiled chunk_layer. Mirrored edges are detected when not stated."""
        num_nodes = species.shape[0]
        n = num_nodes if num_local < 0 else num_local
        if n == 0 or (max_edges > 0 and edge_vec.shape[0] > max_edges):
            # no atoms of its own (a LAMMPS rank that still takes part in the exchange): nothing worth compiling;
            # chunks: the eager layer loop over compiled chunks (chunk_layer)
            return super().energy_and_features(edge_vec, species, edge_index, mirrored, num_local, max_edges)
        if num_local < 0 and not mirrored:
            mirrored = self.is_mirrored(edge_vec, edge_index)
        rows = edge_vec.shape[0] // 2 if mirrored else edge_vec.shape[0]
        key = "mirrored" if mirrored else "edges"
        vec, center, neighbor, real, n_pad, total = self.sizes.pad_graph(key, edge_vec[:rows], edge_index[0, :rows],
                                                                   edge_index[1, :rows], n, num_nodes)
        index = torch.stack([center, neighbor])  # [2, E']
        if mirrored:
            vec, index = torch.cat([vec, -vec]), torch.cat([index, index.flip(0)], dim=1)
        outer = self.ghost_features.exchange
        if outer is not None:
            self.padded_exchange.update(outer, real)
            self.ghost_features.exchange = self.padded_exchange
        try:
            species = self.sizes.pad_rows(species, real, total)
            atom_energy, features = self.whole_graph(vec, species, index, mirrored, n_pad)
        finally:
            self.ghost_features.exchange = outer
        return atom_energy[:n], features[:n]

    def _whole(self, edge_vec: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor, mirrored: bool,
               num_local: int) -> Tuple[torch.Tensor, torch.Tensor]:
        return MLANet.energy_and_features(self, edge_vec, species, edge_index, mirrored, num_local)

    def plan_chunks(self, center: torch.Tensor, neighbor: torch.Tensor, num_nodes: int, num_centers: int,
                    max_edges: int) -> ChunkPlan:
        """MLANet's chunks, with the padded chunk sizes raised to the largest chunk before any chunk runs: every chunk,
        and its recomputation in the backward pass, then runs on the same shapes (one graph per layer)."""
        plan = super().plan_chunks(center, neighbor, num_nodes, num_centers, max_edges)
        self.sizes.mark("chunk centres", max(plan.center_counts))
        self.sizes.mark("chunk other atoms", max(m - c for m, c in zip(plan.row_counts, plan.center_counts)))
        self.sizes.mark("chunk edges", max(plan.edge_counts))
        return plan

    def chunk_layer(self, k: int, h: torch.Tensor, z: torch.Tensor, edge_vec: torch.Tensor, center: torch.Tensor,
                    neighbor: torch.Tensor, num_centers: int) -> torch.Tensor:
        """MLANet.chunk_layer through the padded chunk graph."""
        vec, center, neighbor, real, n_pad, total = self.sizes.pad_graph("chunk", edge_vec, center, neighbor,
                                                                         num_centers, h.shape[0])
        pad = self.sizes.pad_rows
        out = self.chunk_graph(k, pad(h, real, total), pad(z, real, total), vec, center, neighbor, n_pad)
        return out[:num_centers]

    def _chunk(self, k: int, h: torch.Tensor, z: torch.Tensor, edge_vec: torch.Tensor, center: torch.Tensor,
               neighbor: torch.Tensor, num_centers: int) -> torch.Tensor:
        return MLANet.chunk_layer(self, k, h, z, edge_vec, center, neighbor, num_centers)

    @staticmethod
    def is_mirrored(edge_vec: torch.Tensor, edge_index: torch.Tensor) -> bool:
        """Whether edge e + E/2 is edge e reversed (data.graph.build_graph(mirrored=True)), checked exactly: then the
        radial terms and harmonics are computed once per pair, and each pair's gradient is on its first edge."""
        half = edge_vec.shape[0] // 2
        return (half > 0 and edge_vec.shape[0] == 2 * half
                and torch.equal(edge_index[:, half:], edge_index[[1, 0], :half])
                and torch.equal(edge_vec[half:], -edge_vec[:half]))


@contextmanager
def traced_tensor_products():
    """Within it, e3nn builds the tensor products of new models as torch.fx modules (which torch.compile traces)
    rather than TorchScript: for CompiledMLANet, and for a model that only carries weights into compiled_model
    (building TorchScript modules costs tens of MB of memory that a compiled evaluation never uses).

    Example:
        >>> with traced_tensor_products():
        ...     carrier = MLANet(config)
    """
    defaults = e3nn.get_optimization_defaults()
    e3nn.set_optimization_defaults(jit_script_fx=False)
    try:
        yield
    finally:
        e3nn.set_optimization_defaults(**defaults)


def compiled_model(model: MLANet, headroom: float = 0.05, kernel_threads: Optional[int] = None) -> CompiledMLANet:
    """`model` as a CompiledMLANet: the same weights, dtype, device and uncertainty head, no parameter gradients."""
    with traced_tensor_products():
        compiled = CompiledMLANet(model.config, headroom, kernel_threads)
    weight = next(model.parameters())
    compiled = compiled.to(dtype=weight.dtype, device=weight.device)
    compiled.load_state_dict(model.state_dict())
    for head in model.uncertainty:  # its buffers are not in the state dict
        compiled.attach_uncertainty(head)
    return compiled.eval().requires_grad_(False)
