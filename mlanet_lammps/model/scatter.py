"""Row gather and scatter-sum along dim 0, the message-passing primitives of MLANet's blocks, and the halving of
terms that are the same for an edge and its reverse (mirrored edge order, compiled path only).

Eager PyTorch uses index_select / index_add_. Under torch.compile they are written as gather /
scatter_add instead: with more than one kernel thread, Inductor turns index_add (and the backward of index_select)
into per-element atomic adds on the CPU, while it hands scatter_add (the backward of gather) to ATen's kernel. With
2 kernel threads (and tail vectorisation, see model/compiled.py), 192 water atoms took about 500 µs/atom/step with
index_add and 330-350 with scatter_add on this project's 2-core VM.
"""

from typing import List

import torch


def _expanded(index: torch.Tensor, shape: List[int]) -> torch.Tensor:
    """index [E] viewed as [E, 1, ...] and broadcast to `shape` ([E, ...]) without a copy."""
    return index.view([index.shape[0]] + [1] * (len(shape) - 1)).expand(shape)


def gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [N, ...], index [E] -> x[index] [E, ...]."""
    if torch.compiler.is_compiling():
        return torch.gather(x, 0, _expanded(index, [index.shape[0]] + list(x.shape[1:])))
    return x.index_select(0, index)


def scatter_sum(src: torch.Tensor, index: torch.Tensor, num: int) -> torch.Tensor:
    """src [E, ...], index [E] -> out [num, ...] with out[n] = sum of src[e] over index[e] == n."""
    out = src.new_zeros([num] + list(src.shape[1:]))
    if torch.compiler.is_compiling():
        return out.scatter_add(0, _expanded(index, list(src.shape)), src)
    return out.index_add_(0, index, src)


def first_of_pairs(x: torch.Tensor, mirrored: bool) -> torch.Tensor:
    """Per-edge x [E, ...] -> the first E/2 rows if the edges are mirrored (build_graph(mirrored=True): edge e + E/2
    is edge e reversed), else x."""
    return x[:x.shape[0] // 2] if mirrored else x


def repeat_pairs(x: torch.Tensor, mirrored: bool) -> torch.Tensor:
    """Inverse of first_of_pairs for terms symmetric under reversing an edge: [E/2, ...] -> [E, ...] if mirrored."""
    return torch.cat([x, x]) if mirrored else x
