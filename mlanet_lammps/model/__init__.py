"""MLANet model blocks. The model takes tensors (edge vectors, species, edges) and returns per-atom energies;
it never imports ASE, LAMMPS, files or configs."""

from .forces import EnergyAndEdgeGradient, forces_from_edge_grad, virial_from_edge_grad
from .mlanet import MLANet, ModelConfig

__all__ = ["MLANet", "ModelConfig", "EnergyAndEdgeGradient", "forces_from_edge_grad", "virial_from_edge_grad"]
