"""MLANet: species embedding -> dual-path attention layers (the first one followed by the angular density
invariants) -> cross-layer readout -> per-atom energies E_i (eV), plus an optional ZBL short-range repulsion prior."""

from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple

import torch
from e3nn import o3
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import DualPathAttentionBlock, hidden_irreps
from .chunks import ChunkPlan, plan_chunks
from .density import AngularDensity
from .ghosts import GhostFeatures
from .radial import RadialEmbedding
from .repulsion import ZBLRepulsion, switch_radii
from .scale import AtomicEnergyScale
from .scatter import first_of_pairs, repeat_pairs
from .uncertainty import UncertaintyHead


@dataclass
class ModelConfig:
    """Hyperparameters of MLANet (lengths in Å, energies in eV)."""

    atomic_numbers: List[int]
    cutoff: float = 5.0
    num_basis: int = 8
    trainable_basis: bool = False
    envelope_p: int = 6
    l_max: int = 1
    channels: int = 32
    num_layers: int = 2
    embed_dim: int = 16
    radial_hidden: int = 64
    chem_hidden: int = 32
    att_channels: int = 8
    logit_cap: float = 5.0
    readout_hidden: int = 32
    density_l_max: int = 3  # angular density invariants added after layer 1 (density.py); -1: none
    density_channels: int = 8
    avg_num_neighbors: float = 20.0
    reference_energies: List[float] = field(default_factory=list)
    energy_scale: float = 1.0
    repulsion: str = "zbl"  # "zbl": add the ZBL pair repulsion prior (repulsion.py); "none": network only
    repulsion_radii: List[List[float]] = field(default_factory=list)  # [S][S] ZBL switch radii, Å ([]: covalent sums)

    def to_dict(self) -> dict:
        return asdict(self)


class MLANet(nn.Module):
    """The MLANet potential.

    forward(edge_vec, species, edge_index, mirrored=False, num_local=-1, max_edges=0) -> atom_energy
      edge_vec:   [E, 3] r_j - r_i in Å for each directed edge (i = center, j = neighbour)
      species:    [N] species index (position in `atomic_numbers`)
      edge_index: [2, E] (center i, neighbour j); edges beyond the cutoff contribute exactly zero
      mirrored:   edge e + E/2 is edge e reversed, with edge_vec negated (data.graph.build_graph(mirrored=True));
                  the radial terms and spherical harmonics are then computed once per pair (the compiled ASE path).
      num_local:  n, the atoms [0, n) whose energies are computed (-1: all N). Atoms [n, N) are ghosts (copies of
                  atoms that another process owns, see ghosts.py): every edge is centred on a local atom, and
                  between layers `ghost_features` fills the ghost rows from the atoms they copy.
      max_edges:  memory bound: a layer with more edges runs over ranges of centre atoms with at most this many
                  edges each, checkpointed (recomputed in the backward pass instead of kept); 0: no bound.
      atom_energy: [n] per-atom energies in eV.

    Example:
        >>> model = MLANet(ModelConfig(atomic_numbers=[1, 8]))
        >>> atom_energy = model(edge_vec, species, edge_index)  # [N] eV
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        num_species = len(config.atomic_numbers)
        self.register_buffer("atomic_numbers", torch.tensor(config.atomic_numbers, dtype=torch.long))
        self.cutoff = float(config.cutoff)
        self.num_layers = int(config.num_layers)
        self.irreps_sh = o3.Irreps.spherical_harmonics(config.l_max)
        # one evaluation of Y up to the largest l any block needs; the layers read its first irreps_sh.dim columns
        irreps_sh_all = o3.Irreps.spherical_harmonics(max(config.l_max, config.density_l_max))
        self.spherical_harmonics = o3.SphericalHarmonics(irreps_sh_all, normalize=True, normalization="component")
        # Y_lm(-r) = (-1)^l Y_lm(r): the harmonics of a reversed edge
        self.register_buffer("sh_parity", torch.cat([torch.full((ir.dim,), float(ir.p)) for _, ir in irreps_sh_all]),
                             persistent=False)
        self.num_sh = self.irreps_sh.dim
        self.radial = RadialEmbedding(config.cutoff, config.num_basis, config.trainable_basis, config.envelope_p)
        self.embedding = nn.Embedding(num_species, config.embed_dim)
        self.node_init = nn.Linear(config.embed_dim, config.channels)
        irreps_scalar = o3.Irreps(f"{config.channels}x0e")
        irreps = irreps_scalar
        irreps_hidden = hidden_irreps(config.channels, config.l_max)
        layers = []
        for k in range(config.num_layers):
            # only the scalars of the last layer reach the readout: it computes no l > 0 outputs
            irreps_out = irreps_hidden if k < config.num_layers - 1 else irreps_scalar
            layers.append(DualPathAttentionBlock(
                irreps, irreps_out, self.irreps_sh, config.embed_dim, config.num_basis, config.avg_num_neighbors,
                config.radial_hidden, config.chem_hidden, config.att_channels, config.logit_cap))
            irreps = irreps_out
        self.layers = nn.ModuleList(layers)
        # zero or one density block
        self.density = nn.ModuleList([AngularDensity(
            config.density_l_max, config.density_channels, config.num_basis, config.embed_dim,
            config.avg_num_neighbors, config.channels)] if config.density_l_max >= 0 else [])
        self.num_scalars = config.channels
        self.readout = nn.Sequential(
            nn.Linear(config.num_layers * config.channels, config.readout_hidden), nn.SiLU(),
            nn.Linear(config.readout_hidden, 1))
        refs = config.reference_energies or [0.0] * num_species
        if len(refs) != num_species:
            raise ValueError(f"{len(refs)} reference energies for {num_species} species")
        self.energy_scale = AtomicEnergyScale(refs, config.energy_scale)
        if config.repulsion not in ("zbl", "none"):
            raise ValueError(f"repulsion must be 'zbl' or 'none', got {config.repulsion!r}")
        # zero or one prior
        radii = config.repulsion_radii or switch_radii(config.atomic_numbers, config.cutoff)
        self.priors = nn.ModuleList([ZBLRepulsion(config.atomic_numbers, radii)] if config.repulsion == "zbl" else [])
        self.ghost_features = GhostFeatures()
        # zero or one uncertainty head, fitted after training and set by attach_uncertainty
        self.uncertainty = nn.ModuleList()

    def attach_uncertainty(self, head: Optional[UncertaintyHead]) -> None:
        """Use `head` (None: none) for atom_uncertainty, in this model's dtype and device."""
        weight = self.node_init.weight
        self.uncertainty = nn.ModuleList([head.to(device=weight.device, dtype=weight.dtype)] if head else [])

    def forward(self, edge_vec: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor, mirrored: bool = False,
                num_local: int = -1, max_edges: int = 0) -> torch.Tensor:
        return self.energy_and_features(edge_vec, species, edge_index, mirrored, num_local, max_edges)[0]

    def energy_and_features(self, edge_vec: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor,
                            mirrored: bool = False, num_local: int = -1, max_edges: int = 0
                            ) -> Tuple[torch.Tensor, torch.Tensor]:
        """forward's atom_energy [n] eV and the readout's hidden features [n, readout_hidden] (the input of its last
        linear layer, which the uncertainty heads read)."""
        num_nodes = species.shape[0]
        n = num_nodes if num_local < 0 else num_local
        center, neighbor = edge_index[0], edge_index[1]
        if max_edges > 0 and center.shape[0] > max_edges:
            return self.chunked_energy_and_features(edge_vec, species, center, neighbor, n, max_edges)
        sh, radial, env, dist = self.edge_features(edge_vec, mirrored)
        z, h = self.node_features(species)  # [N, embed_dim], [N, channels]: no exchange needed before layer 0
        scalars: List[torch.Tensor] = []
        for k in range(self.num_layers):
            h = self.interaction(k, h, z, sh, radial, env, center, neighbor, n, mirrored)  # [n, irreps_k]
            scalars.append(h[:, :self.num_scalars])
            if k < self.num_layers - 1:
                h = self.ghost_features(h, num_nodes)  # [N, irreps_k]
        return self.atom_energy(scalars, species[:n], self.prior_energy(dist, species, center, neighbor, n))

    def chunked_energy_and_features(self, edge_vec: torch.Tensor, species: torch.Tensor, center: torch.Tensor,
                                    neighbor: torch.Tensor, num_centers: int, max_edges: int
                                    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """energy_and_features over checkpointed chunks of at most about max_edges edges (chunks.py): each chunk
        computes its own edge features and its activations are recomputed in the backward pass, so the autograd
        memory is that of one chunk; the pair prior too runs chunk by chunk."""
        num_nodes = species.shape[0]
        plan = self.plan_chunks(center, neighbor, num_nodes, num_centers, max_edges)
        by_centre = edge_vec if plan.order is None else edge_vec.index_select(0, plan.order)
        vec = by_centre.split(plan.edge_counts)  # chunk c: [E_c, 3]
        centers, neighbors = plan.center.split(plan.edge_counts), plan.neighbor.split(plan.edge_counts)
        z, h = self.node_features(species)  # [N, embed_dim], [N, channels]
        chunk_z = z.index_select(0, plan.rows).split(plan.row_counts)  # chunk c: [M_c, embed_dim]
        scalars: List[torch.Tensor] = []
        for k in range(self.num_layers):
            chunk_h = h.index_select(0, plan.rows).split(plan.row_counts)  # chunk c: [M_c, irreps in]
            h = torch.cat([checkpoint(self.chunk_layer, k, *inputs, use_reentrant=False)
                           for inputs in zip(chunk_h, chunk_z, vec, centers, neighbors, plan.center_counts)])
            scalars.append(h[:, :self.num_scalars])  # [n, channels]
            if k < self.num_layers - 1:
                h = self.ghost_features(h, num_nodes)  # [N, irreps_k]
        prior = edge_vec.new_zeros(num_centers)
        if len(self.priors):
            chunk_species = species.index_select(0, plan.rows).split(plan.row_counts)  # chunk c: [M_c]
            prior = torch.cat([checkpoint(self.chunk_prior, *inputs, use_reentrant=False)
                               for inputs in zip(vec, chunk_species, centers, neighbors, plan.center_counts)])
        return self.atom_energy(scalars, species[:num_centers], prior)

    def edge_features(self, edge_vec: torch.Tensor, mirrored: bool = False
                      ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """edge_vec [E,3] Å -> (Y [E, (max(l_max, density_l_max)+1)^2], radial basis [E, num_basis], envelope [E],
        length [E] Å); mirrored as in forward (only the first E/2 vectors are read)."""
        vec = first_of_pairs(edge_vec, mirrored)
        dist = torch.linalg.norm(vec, dim=-1)
        radial, env = self.radial(dist)
        sh = self.spherical_harmonics(vec)
        if mirrored:
            sh = torch.cat([sh, sh * self.sh_parity])
        return sh, repeat_pairs(radial, mirrored), repeat_pairs(env, mirrored), repeat_pairs(dist, mirrored)

    def node_features(self, species: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """species [N] -> (embedding z [N, embed_dim], input features h [N, channels]); no position dependence."""
        z = self.embedding(species)
        return z, self.node_init(z)

    def interaction(self, k: int, h: torch.Tensor, z: torch.Tensor, sh: torch.Tensor, radial: torch.Tensor,
                    env: torch.Tensor, center: torch.Tensor, neighbor: torch.Tensor, num_centers: int,
                    mirrored: bool = False) -> torch.Tensor:
        """Layer k (0-based; the density block follows layer 0): h [N, irreps in] -> [n, irreps out] for the first
        n = num_centers atoms, the centres of all the edges (center/neighbor [E], features as in edge_features)."""
        for i, layer in enumerate(self.layers):
            if i == k:
                h = layer(h, z, sh[:, :self.num_sh], radial, env, center, neighbor, mirrored, num_centers)
                if k == 0:
                    for density in self.density:
                        h = torch.cat([h[:, :self.num_scalars]
                                       + density(sh, radial, z, center, neighbor, num_centers),
                                       h[:, self.num_scalars:]], dim=-1)
        return h

    def plan_chunks(self, center: torch.Tensor, neighbor: torch.Tensor, num_nodes: int, num_centers: int,
                    max_edges: int) -> ChunkPlan:
        """plan_chunks() (module level) for the edges of this evaluation."""
        return plan_chunks(center, neighbor, num_nodes, num_centers, max_edges)

    def chunk_layer(self, k: int, h: torch.Tensor, z: torch.Tensor, edge_vec: torch.Tensor, center: torch.Tensor,
                    neighbor: torch.Tensor, num_centers: int) -> torch.Tensor:
        """Layer k on one chunk, with its own edge features: h [M, irreps in], z [M, embed_dim] of the chunk's node
        rows (its num_centers centres first), edge_vec [E_c, 3] Å, center [E_c] < num_centers, neighbor [E_c] < M
        -> [num_centers, irreps out]."""
        sh, radial, env, _ = self.edge_features(edge_vec)  # [E_c, ...]
        return self.interaction(k, h, z, sh, radial, env, center, neighbor, num_centers)

    def chunk_prior(self, edge_vec: torch.Tensor, species: torch.Tensor, center: torch.Tensor,
                    neighbor: torch.Tensor, num_centers: int) -> torch.Tensor:
        """prior_energy on one chunk (arguments as in chunk_layer, species [M]) -> [num_centers] eV."""
        return self.prior_energy(torch.linalg.norm(edge_vec, dim=-1), species, center, neighbor, num_centers)

    def prior_energy(self, dist: torch.Tensor, species: torch.Tensor, center: torch.Tensor, neighbor: torch.Tensor,
                     num_centers: int) -> torch.Tensor:
        """The pair priors' energies [num_centers] eV of the first atoms (dist [E] Å, center/neighbor [E] into
        species [N >= num_centers])."""
        e = dist.new_zeros(num_centers)
        for prior in self.priors:
            e = e + prior(dist, species, center, neighbor)[:num_centers]
        return e

    def atom_energy(self, scalars: List[torch.Tensor], species: torch.Tensor, prior: torch.Tensor
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Energies E_i (eV) [n] of n atoms of `species` [n] from the scalar channels of every layer (scalars:
        num_layers x [n, channels]) plus their prior energies [n] (prior_energy), with the readout's hidden features
        [n, readout_hidden]."""
        features = self.readout[1](self.readout[0](torch.cat(scalars, dim=-1)))  # [n, readout_hidden]
        return self.energy_scale(self.readout[2](features).squeeze(-1), species) + prior, features

    def atom_uncertainty(self, features: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """The fitted uncertainty head (model/uncertainty.py) on the readout features [n, readout_hidden] of atoms of
        `species` [n]: [n, 2] (energy eV, force eV/Å per component); [n, 0] without a head."""
        for head in self.uncertainty:
            return head(features, species)
        return features.new_zeros(features.shape[0], 0)
