"""Small equivariant helpers on e3nn's flat irreps layout ([..., mul * (2l+1)] blocks, channel-major)."""

from typing import List, Tuple

import torch
from e3nn import o3


def irreps_blocks(irreps: o3.Irreps) -> List[Tuple[int, int, int]]:
    """(start, mul, l) of each block of `irreps` in the flat layout."""
    blocks: List[Tuple[int, int, int]] = []
    start = 0
    for mul, ir in irreps:
        blocks.append((start, mul, ir.l))
        start += mul * ir.dim
    return blocks


class ChannelDot(torch.nn.Module):
    """Rotation invariants between two feature sets with the same irreps.

    For every block (mul x l) returns, per channel u, <a_u, b_u> / sqrt(2l+1): the 0e part of a (x) b taken
    channel-wise ("uuu" tensor product to scalars), which is exactly invariant.

    forward(a: [E, irreps.dim], b: [E, irreps.dim]) -> [E, irreps.num_irreps]
    """

    blocks: List[Tuple[int, int, int]]

    def __init__(self, irreps: o3.Irreps):
        super().__init__()
        self.blocks = irreps_blocks(o3.Irreps(irreps))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out: List[torch.Tensor] = []
        for start, mul, l in self.blocks:
            d = 2 * l + 1
            prod = a[:, start:start + mul * d] * b[:, start:start + mul * d]
            out.append(prod.reshape(-1, mul, d).sum(-1) / (d ** 0.5))
        return torch.cat(out, dim=-1)


class DirectionalProjection(torch.nn.Module):
    """Projections of vector-like features on the edge direction: for each block mul x l with l >= 1,
    <x_u, Y_l(r_hat)> / sqrt(2l+1) per channel u (invariant).

    forward(x: [E, irreps.dim], sh: [E, sh_irreps.dim]) -> [E, sum of mul over blocks with l >= 1]
    """

    blocks: List[Tuple[int, int, int, int]]

    def __init__(self, irreps: o3.Irreps, sh_irreps: o3.Irreps):
        super().__init__()
        sh_start = {l: start for start, _, l in irreps_blocks(o3.Irreps(sh_irreps))}
        self.blocks = [
            (start, mul, l, sh_start[l]) for start, mul, l in irreps_blocks(o3.Irreps(irreps))
            if l >= 1 and l in sh_start
        ]
        self.num_out = sum(mul for _, mul, _, _ in self.blocks)

    def forward(self, x: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
        out: List[torch.Tensor] = [x.new_zeros(x.shape[0], 0)]
        for start, mul, l, s in self.blocks:
            d = 2 * l + 1
            block = x[:, start:start + mul * d].reshape(-1, mul, d)
            out.append((block * sh[:, s:s + d].unsqueeze(1)).sum(-1) / (d ** 0.5))
        return torch.cat(out, dim=-1)
