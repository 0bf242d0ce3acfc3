"""Radial basis of MLANet: Bessel functions times a smooth polynomial cutoff envelope."""

import math

import torch
from torch import nn


def polynomial_cutoff(x: torch.Tensor, p: float) -> torch.Tensor:
    """f(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2) for x < 1, else 0 (x: any shape, unitless)."""
    xp = torch.pow(x, p)
    f = 1.0 - 0.5 * (p + 1.0) * (p + 2.0) * xp + p * (p + 2.0) * xp * x - 0.5 * p * (p + 1.0) * xp * x * x
    return torch.where(x < 1.0, f, torch.zeros_like(f))


class PolynomialEnvelope(nn.Module):
    """Smooth cutoff f(d) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2), x = d / r_cut.

    f(0) = 1 and f, f', f'' all vanish at d = r_cut; f = 0 for d >= r_cut.

    Args:
        r_cut: cutoff radius in Å.
        p: polynomial exponent (>= 2).
    """

    def __init__(self, r_cut: float, p: int = 6):
        super().__init__()
        if p < 2:
            raise ValueError(f"envelope exponent p must be >= 2, got {p}")
        self.r_cut = float(r_cut)
        self.p = float(p)

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        """d: [E] distances in Å -> [E] envelope values in [0, 1]."""
        return polynomial_cutoff(d / self.r_cut, self.p)


class BesselBasis(nn.Module):
    """Radial Bessel basis e_n(d) = sqrt(2 / r_cut) sin(n pi d / r_cut) / d, n = 1..num_basis.

    Args:
        r_cut: cutoff radius in Å.
        num_basis: number of basis functions.
        trainable: learn the frequencies n pi / r_cut (initialised at the Bessel zeros).
    """

    def __init__(self, r_cut: float, num_basis: int = 8, trainable: bool = False):
        super().__init__()
        freqs = torch.arange(1, num_basis + 1, dtype=torch.get_default_dtype()) * math.pi / r_cut
        if trainable:
            self.freqs = nn.Parameter(freqs)
        else:
            self.register_buffer("freqs", freqs)
        self.prefactor = math.sqrt(2.0 / r_cut)

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        """d: [E] distances in Å (> 0) -> [E, num_basis]."""
        d = d.unsqueeze(-1)
        return self.prefactor * torch.sin(self.freqs * d) / d


class RadialEmbedding(nn.Module):
    """Bessel basis times envelope: the smooth radial features of an edge.

    forward(d: [E]) -> (basis [E, num_basis], envelope [E]); both vanish smoothly at r_cut.
    """

    def __init__(self, r_cut: float, num_basis: int = 8, trainable: bool = False, p: int = 6):
        super().__init__()
        self.bessel = BesselBasis(r_cut, num_basis, trainable)
        self.envelope = PolynomialEnvelope(r_cut, p)

    def forward(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        env = self.envelope(d)
        return self.bessel(d) * env.unsqueeze(-1), env
