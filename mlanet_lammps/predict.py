"""Model predictions on a GraphBatch: energies, forces, stress and per-atom energies (the Python-side path shared by
training, evaluation and the ASE calculator)."""

from dataclasses import dataclass

import torch

from .data.batch import GraphBatch
from .model.forces import EnergyAndEdgeGradient, forces_from_edge_grad, virial_from_edge_grad


@dataclass
class Prediction:
    """energy [G] eV, forces [N, 3] eV/Å, stress [G, 3, 3] eV/Å^3 (NaN where not periodic), atom_energy [N] eV,
    atom_uncertainty [N, 2] (energy eV, force eV/Å; [0, 2] unless asked for)."""

    energy: torch.Tensor
    forces: torch.Tensor
    stress: torch.Tensor
    atom_energy: torch.Tensor
    atom_uncertainty: torch.Tensor


def predict(model: torch.nn.Module, batch: GraphBatch, create_graph: bool = False, uncertainty: bool = False
            ) -> Prediction:
    """Evaluate `model` on `batch`; `create_graph=True` keeps the graph so that force losses can be trained,
    `uncertainty=True` adds the per-atom uncertainties of the model's fitted head."""
    return predict_with(EnergyAndEdgeGradient(model, create_graph, uncertainty), batch)


def predict_with(energy_grad: torch.nn.Module, batch: GraphBatch) -> Prediction:
    """Evaluate an `EnergyAndEdgeGradient` (of the eager or the compiled model) on `batch`."""
    n = batch.species.shape[0]
    edge_vec = batch.edge_vec.detach().requires_grad_(True)
    atom_energy, edge_grad, atom_uncertainty = energy_grad(edge_vec, batch.species, batch.edge_index)
    energy = atom_energy.new_zeros(batch.num_graphs).index_add_(0, batch.batch, atom_energy)
    forces = forces_from_edge_grad(edge_grad, batch.edge_index, n)
    virial = virial_from_edge_grad(edge_vec, edge_grad, batch.edge_batch, batch.num_graphs)
    volume = batch.volume.view(-1, 1, 1)
    stress = torch.where(volume > 0, virial / volume.clamp(min=1e-12), torch.full_like(virial, float("nan")))
    return Prediction(energy, forces, stress, atom_energy, atom_uncertainty)
