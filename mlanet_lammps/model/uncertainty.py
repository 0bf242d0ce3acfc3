"""Per-atom uncertainty heads on the readout's hidden features f_i (the input of its last linear layer).

A head maps f_i [n, H] and the species [n] to a raw score s_i >= 0 and multiplies it by two calibrated scales:
  energy uncertainty of atom i:  u_E,i = scale[0] * s_i   (eV)
  force uncertainty of atom i:   u_F,i = scale[1] * s_i   (eV/Å, per Cartesian component)
The scores depend only on atom i's own features, which are exact on every MPI rank, and are invariant to rotations,
translations and permutations like the energies. The heads are fitted after training (mlanet_lammps/calibration.py)
and hold their tensors as non-persistent buffers: a checkpoint stores them apart from the model's weights, under
its "uncertainty" entry (uncertainty_state / head_from_state).

Methods:
  llpr:     last-layer prediction rigidity: s_i^2 = f_i^T (F^T F / N + reg I)^-1 f_i, with F the features of the N
            training atoms; the variance of E_i under the Laplace posterior of the last layer's weights.
  distance: s_i = distance from f_i to the nearest training-atom features of the same element, in units of the
            per-feature standard deviation of the training atoms.
"""

from typing import Dict, List

import torch
from torch import nn

METHODS = ("llpr", "distance")


class UncertaintyHead(nn.Module):
    """Base of the heads: forward(features [n, H], species [n]) -> [n, 2] (u_E eV, u_F eV/Å).

    Args:
        scale: [2] calibration scales of the score (energy eV, force eV/Å); ones until calibrated.
    """

    method = ""

    def __init__(self, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale.detach().clone().to(torch.float64), persistent=False)

    def forward(self, features: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        return self.score(features, species).unsqueeze(-1) * self.scale  # [n, 2]

    def score(self, features: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Raw score s_i [n] >= 0."""
        raise NotImplementedError

    def tensors(self) -> Dict[str, torch.Tensor]:
        """The head's buffers on the CPU, floating ones in float64 (what head_from_state rebuilds it from)."""
        return {name: buf.detach().to("cpu", torch.float64 if buf.is_floating_point() else buf.dtype).clone()
                for name, buf in self.named_buffers()}


class LLPRHead(UncertaintyHead):
    """Last-layer prediction rigidity. s_i = |f_i @ L| with L the Cholesky factor of (F^T F / N + reg I)^-1.

    Args:
        factor: [H, H] L (lower triangular).
        scale: [2] calibration scales.

    Example:
        >>> head = LLPRHead.fit(train_features, train_species, reg=1e-3)
        >>> u = head(features, species)  # [n, 2]
    """

    method = "llpr"

    def __init__(self, factor: torch.Tensor, scale: torch.Tensor):
        super().__init__(scale)
        self.register_buffer("factor", factor.detach().clone().to(torch.float64), persistent=False)

    @classmethod
    def fit(cls, features: torch.Tensor, species: torch.Tensor, reg: float) -> "LLPRHead":
        """From the features [N, H] of the training atoms; reg is relative to the mean eigenvalue of F^T F / N."""
        f = features.to(torch.float64)
        cov = f.T @ f / max(f.shape[0], 1)  # [H, H]
        cov = cov + reg * cov.diagonal().mean().clamp(min=1e-12) * torch.eye(f.shape[1], dtype=f.dtype)
        factor = torch.linalg.cholesky(torch.linalg.inv(cov))
        return cls(factor, torch.ones(2, dtype=torch.float64))

    def score(self, features: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        return torch.linalg.norm(features @ self.factor, dim=-1)

    def __repr__(self) -> str:
        return f"LLPRHead(features={self.factor.shape[0]}, scale=({self.scale[0]:.3g} eV, {self.scale[1]:.3g} eV/Å))"


class DistanceHead(UncertaintyHead):
    """Distance to the nearest training-atom features of the same element (standardised per feature).

    Args:
        references: [M, H] standardised features of (a sample of) the training atoms.
        reference_species: [M] their species.
        inv_std: [H] 1 / standard deviation of each feature over the training atoms.
        scale: [2] calibration scales.
    """

    method = "distance"

    def __init__(self, references: torch.Tensor, reference_species: torch.Tensor, inv_std: torch.Tensor,
                 scale: torch.Tensor):
        super().__init__(scale)
        self.rows_per_block = 4096  # atoms compared with the references at once (bounds memory to 4096 x M)
        self.register_buffer("references", references.detach().clone().to(torch.float64), persistent=False)
        self.register_buffer("reference_species", reference_species.detach().clone().to(torch.long),
                             persistent=False)
        self.register_buffer("inv_std", inv_std.detach().clone().to(torch.float64), persistent=False)

    @classmethod
    def fit(cls, features: torch.Tensor, species: torch.Tensor, max_references: int = 4000,
            seed: int = 0) -> "DistanceHead":
        """From the features [N, H] and species [N] of the training atoms, keeping at most `max_references` of them
        (a random sample, drawn per element in proportion to its atoms)."""
        f = features.to(torch.float64)
        inv_std = 1.0 / f.std(dim=0).clamp(min=1e-8)
        keep = torch.randperm(f.shape[0], generator=torch.Generator().manual_seed(seed))[:max_references]
        return cls(f[keep] * inv_std, species[keep], inv_std, torch.ones(2, dtype=torch.float64))

    def score(self, features: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        refs = self.references.to(features.dtype)  # [M, H]
        ref_norm = (refs * refs).sum(-1)  # [M]
        other = species.unsqueeze(-1) != self.reference_species  # [n, M]
        z = features * self.inv_std.to(features.dtype)  # [n, H]
        out: List[torch.Tensor] = []
        for start in range(0, z.shape[0], self.rows_per_block):
            block = z[start:start + self.rows_per_block]
            d2 = (block * block).sum(-1, keepdim=True) + ref_norm - 2.0 * block @ refs.T  # [rows, M]
            d2 = d2.masked_fill(other[start:start + self.rows_per_block], float("inf"))
            out.append(d2.min(dim=-1).values.clamp(min=0.0).sqrt())
        return torch.cat(out) if out else features.new_zeros(0)

    def __repr__(self) -> str:
        return (f"DistanceHead(references={self.references.shape[0]}, features={self.references.shape[1]}, "
                f"scale=({self.scale[0]:.3g} eV, {self.scale[1]:.3g} eV/Å))")


def require_head(model: nn.Module) -> None:
    """ValueError unless `model` (an MLANet) has an uncertainty head: asked for uncertainties, it must have one."""
    if len(model.uncertainty) == 0:
        raise ValueError("this model has no fitted uncertainty: calibrate it first (mlanet-calibrate)")


def uncertainty_state(head: UncertaintyHead) -> Dict[str, object]:
    """The checkpoint entry of a head: {"method": ..., "tensors": {...}} (plain data)."""
    return {"method": head.method, "tensors": head.tensors()}


def head_from_state(state: Dict[str, object]) -> UncertaintyHead:
    """Rebuild a head from its checkpoint entry (uncertainty_state)."""
    method, t = state["method"], state["tensors"]
    if method == "llpr":
        return LLPRHead(t["factor"], t["scale"])
    if method == "distance":
        return DistanceHead(t["references"], t["reference_species"], t["inv_std"], t["scale"])
    raise ValueError(f"unknown uncertainty method {method!r} (known: {', '.join(METHODS)})")
