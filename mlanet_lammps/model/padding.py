"""Padding of graphs to a few fixed sizes, so that Inductor's static-shape graphs serve many evaluations.

Each kind of size (edges, centre atoms, other atoms, of a whole evaluation or of a chunk) has a high-water mark;
a graph is padded up to the marks, and a size past its mark raises it (and compiles once more). A padding edge
points from centre row 0 to itself at `far` = 2 r_cut, where the envelope, the radial basis, every pooling weight
and the ZBL switch are exactly zero; padding atoms have no edges and their energies are dropped. Padding therefore
changes no energy, no gradient with respect to the edges, and no gradient with respect to the weights.
"""

import math
from typing import Dict, Tuple

import torch


class PaddedSizes:
    """High-water marks of padded sizes, and the padding of graphs and rows to them.

    Args:
        far: length (Å) of the padding edges; twice the model's cutoff.
        headroom: a new mark is this fraction above the size that set it.

    Example:
        >>> sizes = PaddedSizes(far=10.0)
        >>> vec, center, neighbor, real, n_pad, rows = sizes.pad_graph("edges", edge_vec, center, neighbor, n, n)
    """

    def __init__(self, far: float, headroom: float = 0.05):
        self.far = float(far)
        self.headroom = float(headroom)
        self.marks: Dict[str, int] = {}

    def __repr__(self) -> str:
        marks = ", ".join(f"{k}={v}" for k, v in sorted(self.marks.items())) or "none yet"
        return f"{self.__class__.__name__}({marks})"

    def mark(self, key: str, size: int) -> int:
        """The padded size for `size` items of kind `key`: the high-water mark, raised when `size` passes it to
        `size` plus headroom plus four times sqrt(size) (a count's thermal fluctuation: atoms migrating between
        LAMMPS ranks, pairs crossing the cutoff), rounded up to a multiple of 8."""
        if size > self.marks.get(key, 0):
            self.marks[key] = 8 * math.ceil((size * (1.0 + self.headroom) + 4.0 * math.sqrt(size)) / 8)
        return self.marks.get(key, 0)

    def pad_graph(self, key: str, edge_vec: torch.Tensor, center: torch.Tensor, neighbor: torch.Tensor,
                  num_centers: int, num_nodes: int
                  ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
        """A graph whose node rows are [num_centers centres | other atoms] (edges [E] centred on the centres),
        padded to the marks of kind `key`: (edge_vec [E', 3], center [E'], neighbor [E'], real [num_nodes] = the
        padded row of each row, padded centres n', padded rows N'). Rows become [centres | padding | others |
        padding]."""
        n = num_centers
        n_pad = self.mark(key + " centres", n)
        others = self.mark(key + " other atoms", num_nodes - n)
        pad = self.mark(key + " edges", edge_vec.shape[0]) - edge_vec.shape[0]
        far = edge_vec.new_zeros(pad, 3)
        far[:, 2] = self.far
        device = center.device
        real = torch.cat([torch.arange(n, device=device), torch.arange(n_pad, n_pad + num_nodes - n, device=device)])
        zeros = center.new_zeros(pad)
        neighbor = real.index_select(0, neighbor)
        return (torch.cat([edge_vec, far]), torch.cat([center, zeros]), torch.cat([neighbor, zeros]), real,
                n_pad, n_pad + others)

    @staticmethod
    def pad_rows(x: torch.Tensor, real: torch.Tensor, rows: int) -> torch.Tensor:
        """x [N, ...] -> [rows, ...] with x's rows at `real` and zeros elsewhere."""
        return x.new_zeros((rows,) + tuple(x.shape[1:])).index_copy(0, real, x)
