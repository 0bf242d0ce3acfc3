"""Fitting a trained MLANet's per-atom uncertainty head (model/uncertainty.py) and calibrating it.

The head is fitted on the readout features of the training atoms; its two scales are then fitted on the validation
frames, by maximum likelihood of Gaussian errors:
  force:  each Cartesian component of (F_pred - F_ref)_i ~ N(0, u_F,i^2), u_F,i = a_F s_i
          -> a_F^2 = mean_i |dF_i|^2 / (3 s_i^2)
  energy: E_pred - E_ref of a structure ~ N(0, sum_i u_E,i^2), u_E,i = a_E s_i
          -> a_E^2 = mean_frames dE^2 / sum_i s_i^2
For llpr, the regulariser is chosen among REGULARISERS by the validation force likelihood.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
import torch

from .checkpoint import load_checkpoint, save_checkpoint
from .data.batch import GraphBatch, collate, frame_to_graph
from .data.io import Frame
from .errors import MLANetInputError
from .evaluate import predict_frames
from .model.mlanet import MLANet, ModelConfig
from .model.uncertainty import METHODS, DistanceHead, LLPRHead, UncertaintyHead, uncertainty_state

REGULARISERS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # llpr: reg relative to the mean eigenvalue of F^T F / N


def atom_features(model: MLANet, graphs: Sequence[GraphBatch], batch_size: int = 8) -> Tuple[torch.Tensor,
                                                                                              torch.Tensor]:
    """Readout features [N, H] (float64, CPU) and species [N] of every atom of `graphs` (frame_to_graph outputs in
    the model's dtype and device), in order."""
    weight = model.node_init.weight
    feats, species = [], []
    with torch.no_grad():
        for i in range(0, len(graphs), batch_size):
            batch = collate(list(graphs[i:i + batch_size])).to(weight.device, weight.dtype)
            _, f = model.energy_and_features(batch.edge_vec, batch.species, batch.edge_index)
            feats.append(f.to("cpu", torch.float64))
            species.append(batch.species.cpu())
    return torch.cat(feats), torch.cat(species)


@dataclass
class ValidationErrors:
    """The errors the scales are fitted to: readout features [N, H] and species [N] of every atom, force errors
    [N, 3] (eV/Å, NaN rows where a frame has no forces), energy errors [G] (eV, NaN without energy) and the frame of
    each atom [N]."""

    features: torch.Tensor
    species: torch.Tensor
    force_error: np.ndarray
    energy_error: np.ndarray
    frame_of_atom: np.ndarray

    @classmethod
    def measure(cls, model: MLANet, frames: Sequence[Frame], batch_size: int = 8) -> "ValidationErrors":
        """The errors of `model` on `frames`, which must hold energies and forces (check_labels)."""
        check_labels(frames)
        weight = model.node_init.weight
        preds = predict_frames(model, frames, batch_size, weight.device, weight.dtype)
        graphs = [frame_to_graph(f, float(model.cutoff), model.atomic_numbers.tolist()) for f in frames]
        features, species = atom_features(model, graphs, batch_size)
        nan3 = [np.full((f.num_atoms, 3), np.nan) for f in frames]
        force_error = np.concatenate([p.forces - f.forces if f.forces is not None else n
                                      for f, p, n in zip(frames, preds, nan3)])
        energy_error = np.array([p.energy - f.energy if f.energy is not None else np.nan
                                 for f, p in zip(frames, preds)])
        frame_of_atom = np.repeat(np.arange(len(frames)), [f.num_atoms for f in frames])
        return cls(features, species, force_error, energy_error, frame_of_atom)

    def scales(self, score: np.ndarray) -> Tuple[float, float]:
        """(a_E eV, a_F eV/Å) for raw scores `score` [N] (module docstring)."""
        s2 = np.maximum(score, 1e-12) ** 2
        has_f = np.isfinite(self.force_error).all(axis=1)
        a_f = np.sqrt(np.mean((self.force_error[has_f] ** 2).sum(axis=1) / (3.0 * s2[has_f])))
        sum_s2 = np.bincount(self.frame_of_atom, weights=s2, minlength=len(self.energy_error))
        has_e = np.isfinite(self.energy_error)
        a_e = np.sqrt(np.mean(self.energy_error[has_e] ** 2 / sum_s2[has_e]))
        return float(a_e), float(a_f)

    def force_nll(self, sigma: np.ndarray) -> float:
        """Mean Gaussian negative log-likelihood of the force components for per-atom sigma [N] (eV/Å)."""
        has_f = np.isfinite(self.force_error).all(axis=1)
        var = np.maximum(sigma[has_f], 1e-12)[:, None] ** 2
        return float(np.mean(0.5 * np.log(2 * np.pi * var) + self.force_error[has_f] ** 2 / (2 * var)))


def check_labels(frames: Sequence[Frame], where: str = "validation frames") -> None:
    """An MLANetInputError unless some of `frames` have energies and some forces: the two scales are fitted to
    them."""
    if not any(f.forces is not None for f in frames) or not any(f.energy is not None for f in frames):
        raise MLANetInputError(where, "calibrating the uncertainty needs frames with reference energies and forces",
                               "label them, or set training.uncertainty: none (mlanet-train)")


def calibrated(head: UncertaintyHead, errors: ValidationErrors) -> UncertaintyHead:
    """`head` with its scales fitted to `errors`."""
    a_e, a_f = errors.scales(head.score(errors.features, errors.species).numpy())
    head.scale.copy_(torch.tensor([a_e, a_f], dtype=head.scale.dtype))
    return head


def fit_uncertainty(model: MLANet, train_graphs: Sequence[GraphBatch], valid_frames: Sequence[Frame],
                    method: str = "llpr", batch_size: int = 8) -> UncertaintyHead:
    """A calibrated uncertainty head for `model` (float64 CPU tensors): fitted on the atoms of `train_graphs`
    (frame_to_graph of the training frames), calibrated on `valid_frames` (with energies and forces)."""
    if method not in METHODS:
        raise ValueError(f"uncertainty method {method!r} is not one of {', '.join(METHODS)}")
    features, species = atom_features(model, train_graphs, batch_size)
    errors = ValidationErrors.measure(model, valid_frames, batch_size)
    if method == "distance":
        return calibrated(DistanceHead.fit(features, species), errors)
    candidates: List[UncertaintyHead] = [calibrated(LLPRHead.fit(features, species, reg), errors)
                                         for reg in REGULARISERS]
    nll = [errors.force_nll(h(errors.features, errors.species)[:, 1].numpy()) for h in candidates]
    return candidates[int(np.argmin(nll))]


def save_with_uncertainty(source: str | Path, target: str | Path, head: UncertaintyHead) -> Path:
    """Write checkpoint `source` to `target` (may be the same path; atomically) with `head` as its uncertainty."""
    payload = load_checkpoint(source)
    rest = {k: v for k, v in payload.items() if k not in ("format", "version", "package_version", "model_config",
                                                         "model_state", "uncertainty")}
    save_checkpoint(target, ModelConfig(**payload["model_config"]), payload["model_state"],
                    uncertainty=uncertainty_state(head), **rest)
    return Path(target)
