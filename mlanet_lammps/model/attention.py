"""Dual-path dynamic attention interaction block of MLANet.

For every edge i <- j (center i, neighbour j, r_ij = r_j - r_i):
  geometric path  m_geo_ij  = TP_uvu( W h_j , Y(r_hat_ij) ; w = MLP(radial_ij) )        equivariant message
  chemical path   c_ij      = SiLU( A [z_i, s_i] + B [z_j, s_j] + C radial_ij )           invariant pair features
                  m_chem_ij = D c_ij                                                      scalar message
  invariants      q_i.k_j per channel and l,  q_i.Y_ij,  k_j.Y_ij  (q = Q h, k = K h)     "query (x) key -> 0e"
  dynamic weights (a_ij, g_geo, g_chem) = MLP([c_ij, invariants]);  (g_geo, g_chem) = softmax over the two paths
  message         m_ij = g_geo m_geo_ij (+) g_chem m_chem_ij
The messages are pooled per atom by `MultiPerspectivePooling` (sum / mean / attention with logits a_ij), mixed by
an equivariant linear layer, passed through a gated SiLU nonlinearity and added to a self-connection.
z are species embeddings, s the scalar (0e) channels of h. All weights are invariant, so equivariance is exact.
"""

from typing import List, Tuple

import torch
from e3nn import o3
from e3nn.nn import Activation, FullyConnectedNet, Gate
from torch import nn

from .irreps_ops import ChannelDot, DirectionalProjection
from .pooling import MultiPerspectivePooling
from .scatter import first_of_pairs, gather, repeat_pairs


def geometric_paths(irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_target: o3.Irreps
                    ) -> Tuple[o3.Irreps, List[Tuple[int, int, int, str, bool]]]:
    """Channel-wise ("uvu") paths h (x) Y -> irreps whose (l, parity) occurs in `irreps_target`."""
    allowed = {ir for _, ir in irreps_target}
    irreps_mid: List[Tuple[int, o3.Irrep]] = []
    instructions: List[Tuple[int, int, int, str, bool]] = []
    for i_in, (mul, ir_in) in enumerate(irreps_in):
        for i_sh, (_, ir_sh) in enumerate(irreps_sh):
            for ir_out in ir_in * ir_sh:
                if ir_out in allowed:
                    instructions.append((i_in, i_sh, len(irreps_mid), "uvu", True))
                    irreps_mid.append((mul, ir_out))
    return o3.Irreps(irreps_mid), instructions


def hidden_irreps(channels: int, l_max: int) -> o3.Irreps:
    """channels x (0e + 1o + 2e + ...) up to l_max (natural parity)."""
    return o3.Irreps([(channels, (l, (-1) ** l)) for l in range(l_max + 1)])


class DualPathAttentionBlock(nn.Module):
    """One interaction layer.

    Args:
        irreps_in: node feature irreps entering the layer.
        irreps_out: node feature irreps leaving the layer (channels x 0e + channels x 1o + ...).
        irreps_sh: spherical-harmonic irreps of the edges.
        embed_dim: size of the species embedding z.
        num_basis: number of radial basis functions.
        avg_num_neighbors: normaliser of the sum pooling.
        radial_hidden: hidden width of the radial MLP that makes the tensor-product weights.
        chem_hidden: width of the chemical path / attention MLP.
        att_channels: channels per l of the query and key features.
        logit_cap: soft cap of attention logits.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, irreps_sh: o3.Irreps, embed_dim: int,
                 num_basis: int, avg_num_neighbors: float, radial_hidden: int = 64, chem_hidden: int = 32,
                 att_channels: int = 8, logit_cap: float = 5.0):
        super().__init__()
        irreps_in, irreps_out, irreps_sh = o3.Irreps(irreps_in), o3.Irreps(irreps_out), o3.Irreps(irreps_sh)
        self.num_scalars_in = irreps_in.count("0e")

        # geometric path
        self.linear_neighbor = o3.Linear(irreps_in, irreps_in)
        irreps_mid, instructions = geometric_paths(irreps_in, irreps_sh, irreps_out)
        self.tp = o3.TensorProduct(irreps_in, irreps_sh, irreps_mid, instructions,
                                   shared_weights=False, internal_weights=False)
        self.radial_mlp = FullyConnectedNet([num_basis, radial_hidden, self.tp.weight_numel], torch.nn.functional.silu)

        # chemical path (factorised pair MLP: node terms computed once per atom)
        node_inv = embed_dim + self.num_scalars_in
        self.chem_center = nn.Linear(node_inv, chem_hidden)
        self.chem_neighbor = nn.Linear(node_inv, chem_hidden, bias=False)
        self.chem_radial = nn.Linear(num_basis, chem_hidden, bias=False)
        self.chem_message = nn.Linear(chem_hidden, chem_hidden)

        # query / key features in the l's the input carries
        irreps_att = o3.Irreps([(att_channels, ir) for _, ir in irreps_in.sort().irreps.simplify()])
        self.query = o3.Linear(irreps_in, irreps_att)
        self.key = o3.Linear(irreps_in, irreps_att)
        self.qk_dot = ChannelDot(irreps_att)
        self.directional = DirectionalProjection(irreps_att, irreps_sh)
        num_inv = chem_hidden + irreps_att.num_irreps + 2 * self.directional.num_out
        self.dynamic = nn.Sequential(nn.Linear(num_inv, chem_hidden), nn.SiLU(), nn.Linear(chem_hidden, 3))

        # pooling, mixing and gated update
        self.pool = MultiPerspectivePooling(avg_num_neighbors, logit_cap)
        irreps_msg = irreps_mid + o3.Irreps(f"{chem_hidden}x0e")
        gated = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l > 0])
        scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l == 0])
        if len(gated) > 0:
            self.gate = Gate(scalars, [torch.nn.functional.silu], o3.Irreps(f"{gated.num_irreps}x0e"), [torch.sigmoid],
                             gated)
        else:  # scalar-only output (last layer, or l_max = 0): nothing to gate
            self.gate = Activation(scalars, [torch.nn.functional.silu])
        self.linear_out = o3.Linear(irreps_msg + irreps_msg + irreps_msg, self.gate.irreps_in)
        self.self_connection = o3.Linear(irreps_in, irreps_out)
        self.irreps_in, self.irreps_out = irreps_in, irreps_out

    def forward(self, h: torch.Tensor, z: torch.Tensor, sh: torch.Tensor, radial: torch.Tensor, env: torch.Tensor,
                center: torch.Tensor, neighbor: torch.Tensor, mirrored: bool = False, num_centers: int = -1
                ) -> torch.Tensor:
        """h: [N, irreps_in], z: [N, embed_dim], sh: [E, irreps_sh], radial: [E, num_basis], env: [E],
        center: [E] in [0, n), neighbor: [E] in [0, N) -> [n, irreps_out], the new features of the first n =
        num_centers atoms (-1: all N; the others are only read as neighbours). mirrored: edge e + E/2 is edge e
        reversed, so the radial terms are computed for the first half only (scatter.first_of_pairs)."""
        n = h.shape[0] if num_centers < 0 else num_centers
        h_center = h[:n]
        pair_radial = first_of_pairs(radial, mirrored)
        # geometric path
        m_geo = self.tp(gather(self.linear_neighbor(h), neighbor), sh,
                        repeat_pairs(self.radial_mlp(pair_radial), mirrored))  # [E, irreps_mid]
        # chemical path
        node_inv = torch.cat([z, h[:, :self.num_scalars_in]], dim=-1)  # [N, embed_dim + scalars]
        c = torch.nn.functional.silu(gather(self.chem_center(node_inv[:n]), center)
                                     + gather(self.chem_neighbor(node_inv), neighbor)
                                     + repeat_pairs(self.chem_radial(pair_radial), mirrored))  # [E, chem_hidden]
        m_chem = self.chem_message(c) * env.unsqueeze(-1)
        # invariants of query (x) key and of both with the bond direction
        q = gather(self.query(h_center), center)  # [E, irreps_att]
        k = gather(self.key(h), neighbor)
        inv = torch.cat([c, self.qk_dot(q, k), self.directional(q, sh), self.directional(k, sh)], dim=-1)
        dyn = self.dynamic(inv)  # [E, 3]: attention logit, two path weights
        path_w = torch.softmax(dyn[:, 1:], dim=-1)
        m = torch.cat([path_w[:, :1] * m_geo, path_w[:, 1:] * m_chem], dim=-1)  # [E, irreps_msg]
        pooled = self.pool(m, center, env, dyn[:, 0], n)  # [n, 3 x irreps_msg]
        return self.self_connection(h_center) + self.gate(self.linear_out(pooled))
