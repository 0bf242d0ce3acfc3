"""Per-element reference energies and energy scale: E_i = scale * e_i + E_ref[Z_i] (eV)."""

from typing import Sequence

import torch
from torch import nn


class AtomicEnergyScale(nn.Module):
    """forward(e: [N] raw network outputs, species: [N] species indices) -> [N] per-atom energies in eV.

    Args:
        reference_energies: [num_species] per-element reference energies in eV (least-squares fit on training data).
        scale: energy scale in eV (the RMS of training force components in eV/Å times 1 Å).
    """

    def __init__(self, reference_energies: Sequence[float], scale: float):
        super().__init__()
        # float64 until the model is cast to its run dtype, so that a float64 model holds the energies exactly
        # (reference energies reach thousands of eV, where float32 rounds by 1e-4 eV)
        self.register_buffer("reference_energies", torch.tensor(list(reference_energies), dtype=torch.float64))
        self.register_buffer("scale", torch.tensor(float(scale), dtype=torch.float64))

    def forward(self, e: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        return e * self.scale + self.reference_energies[species]
