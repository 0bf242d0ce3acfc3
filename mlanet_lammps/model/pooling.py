"""Multi-perspective local pooling of neighbor messages (smooth, per atom).

Three views of the messages m_ij arriving at atom i, concatenated along the feature axis:
  sum:        sum_j m_ij / avg_num_neighbors                      (extensive, "additive" view)
  mean:       sum_j f_ij m_ij / (1 + sum_j f_ij)                   (intensive, smooth neighbour mean)
  attention:  sum_j alpha_ij m_ij,  alpha_ij = f_ij exp(a_ij) / (1 + sum_k f_ik exp(a_ik))
f_ij is the cutoff envelope, so every weight goes to zero smoothly as a neighbour leaves the cutoff, and the
"1 +" keeps atoms with no neighbours finite. The soft attention is the smooth replacement of max pooling:
it concentrates on the neighbours with large logits without the kink of a hard max. All pooling is over the
neighbours of one atom only, so energies stay local (LAMMPS domain decomposition stays exact).
"""

import torch
from torch import nn

from .scatter import gather, scatter_sum


class MultiPerspectivePooling(nn.Module):
    """forward(m: [E, D], center: [E], env: [E], logits: [E], num_nodes) -> [num_nodes, 3 D]
    (irreps of the output: the message irreps repeated three times: sum, mean, attention)."""

    def __init__(self, avg_num_neighbors: float, logit_cap: float = 5.0):
        super().__init__()
        self.inv_avg = 1.0 / float(avg_num_neighbors)
        self.logit_cap = float(logit_cap)

    def forward(self, m: torch.Tensor, center: torch.Tensor, env: torch.Tensor, logits: torch.Tensor,
                num_nodes: int) -> torch.Tensor:
        # soft cap keeps exp() finite in float32 without a (non-smooth) max subtraction
        a = self.logit_cap * torch.tanh(logits / self.logit_cap)
        w_att = env * torch.exp(a)
        # per-atom normalisers of the mean and attention views
        norms = scatter_sum(torch.stack([env, w_att], dim=-1), center, num_nodes)
        denom = gather(1.0 + norms, center)
        # three [E, D] scatters are cheaper (forward and backward) than one of an [E, 3, D] outer product
        views = [
            scatter_sum(m, center, num_nodes).mul_(self.inv_avg),
            scatter_sum((env / denom[:, 0]).unsqueeze(-1) * m, center, num_nodes),
            scatter_sum((w_att / denom[:, 1]).unsqueeze(-1) * m, center, num_nodes),
        ]
        return torch.cat(views, dim=-1)
