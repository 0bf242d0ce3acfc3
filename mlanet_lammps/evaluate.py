"""Evaluate a trained model on labelled structures: per-structure predictions, error metrics overall, per element
and per config_type, and the predictions written as extended XYZ."""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from ase.data import chemical_symbols

from .data.batch import collate, frame_to_graph
from .data.io import Frame, elements, voigt, write_atoms
from .metrics import error_metrics, format_groups, format_table, uncertainty_metrics
from .model.mlanet import MLANet
from .predict import predict


@dataclass
class FramePrediction:
    """The model's energy (eV), forces [N, 3] (eV/Å), stress [3, 3] (eV/Å^3, None unless fully periodic) and
    per-atom uncertainties [N, 2] (energy eV, force eV/Å; None unless asked for) of one structure."""

    energy: float
    forces: np.ndarray
    stress: Optional[np.ndarray]
    uncertainty: Optional[np.ndarray] = None


def predict_frames(model: MLANet, frames: Sequence[Frame], batch_size: int = 8, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float64, uncertainty: bool = False) -> List[FramePrediction]:
    """`model`'s predictions for each of `frames`, evaluated `batch_size` structures at a time; with `uncertainty`,
    the per-atom uncertainties of its fitted head too."""
    model = model.to(device=device, dtype=dtype).eval()
    cutoff, numbers = float(model.cutoff), model.atomic_numbers.tolist()
    out: List[FramePrediction] = []
    for i in range(0, len(frames), batch_size):
        chunk = frames[i:i + batch_size]
        batch = collate([frame_to_graph(f, cutoff, numbers) for f in chunk]).to(device, dtype)
        pred = predict(model, batch, uncertainty=uncertainty)
        bounds = np.cumsum([f.num_atoms for f in chunk])[:-1]
        energy = pred.energy.detach().cpu().double().numpy()
        forces = np.split(pred.forces.detach().cpu().double().numpy(), bounds)
        stress = pred.stress.detach().cpu().double().numpy()
        sigma = np.split(pred.atom_uncertainty.detach().cpu().double().numpy(), bounds) if uncertainty else None
        out += [FramePrediction(float(energy[k]), forces[k], stress[k] if f.pbc.all() else None,
                                sigma[k] if sigma is not None else None) for k, f in enumerate(chunk)]
    return out


def error_arrays(frames: Sequence[Frame], preds: Sequence[FramePrediction], element: Optional[int] = None
                 ) -> Dict[str, np.ndarray]:
    """Reference/predicted pairs (metrics.error_metrics' input) of the labelled quantities: energies per atom,
    force components and stress components; with `element` (atomic number) only the forces of its atoms."""
    parts: Dict[str, List[np.ndarray]] = {k: [] for k in ("e_ref", "e_pred", "f_ref", "f_pred", "s_ref", "s_pred")}
    for frame, pred in zip(frames, preds):
        if frame.energy is not None and element is None:
            parts["e_ref"].append(np.array([frame.energy / frame.num_atoms]))
            parts["e_pred"].append(np.array([pred.energy / frame.num_atoms]))
        if frame.forces is not None:
            atoms = np.ones(frame.num_atoms, dtype=bool) if element is None else frame.numbers == element
            parts["f_ref"].append(frame.forces[atoms].reshape(-1))
            parts["f_pred"].append(pred.forces[atoms].reshape(-1))
        if frame.stress is not None and pred.stress is not None and element is None:
            parts["s_ref"].append(frame.stress.reshape(-1))
            parts["s_pred"].append(pred.stress.reshape(-1))
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}


def evaluate_frames(model: MLANet, frames: Sequence[Frame], batch_size: int = 8, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float64) -> Tuple[Dict[str, float], Dict[str, np.ndarray]]:
    """Metrics (meV/atom, meV/Å, meV/Å^3) and prediction/reference arrays of `model` on `frames`."""
    arrays = error_arrays(frames, predict_frames(model, frames, batch_size, device, dtype))
    return error_metrics(arrays), arrays


def error_tables(frames: Sequence[Frame], preds: Sequence[FramePrediction]) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Metrics per config_type (energy, forces, stress; with its frame count) and per element (forces only; with its
    atom count), in the units of metrics.error_metrics."""
    types: Dict[str, Dict[str, float]] = {}
    for name in sorted({f.config_type for f in frames}):
        chosen = [(f, p) for f, p in zip(frames, preds) if f.config_type == name]
        types[name] = error_metrics(error_arrays(*zip(*chosen)))
        types[name]["frames"] = float(len(chosen))
    per_element: Dict[str, Dict[str, float]] = {}
    for z in sorted(elements(frames)):
        metrics = error_metrics(error_arrays(frames, preds, element=z))
        metrics.pop("frames")
        metrics["atoms"] = float(sum(int((f.numbers == z).sum()) for f in frames))
        per_element[chemical_symbols[z]] = metrics
    return {"per_config_type": types, "per_element": per_element}


@dataclass
class ErrorReport:
    """Errors of predictions on labelled frames: the reference/predicted pairs (error_arrays), the overall metrics
    (metrics.error_metrics) and the tables per config_type and per element (error_tables)."""

    arrays: Dict[str, np.ndarray]
    metrics: Dict[str, float]
    tables: Dict[str, Dict[str, Dict[str, float]]]

    def text(self) -> str:
        """The overall table, then the per-config_type and per-element tables, as plain text."""
        return f"{format_table(self.metrics)}\n{format_groups(self.tables)}"


def error_report(frames: Sequence[Frame], preds: Sequence[FramePrediction]) -> ErrorReport:
    """The ErrorReport of `preds` (predict_frames) against the labels of `frames`."""
    arrays = error_arrays(frames, preds)
    return ErrorReport(arrays, error_metrics(arrays), error_tables(frames, preds))


def uncertainty_arrays(frames: Sequence[Frame], preds: Sequence[FramePrediction]) -> Dict[str, np.ndarray]:
    """Uncertainties and errors of predictions with uncertainties: per atom of the frames with forces, force_sigma
    [N] (eV/Å) and force_error [N, 3]; per frame with an energy, energy_sigma [G] (eV, per-atom ones in quadrature)
    and energy_error [G]."""
    with_f = [(f, p) for f, p in zip(frames, preds) if f.forces is not None]
    with_e = [(f, p) for f, p in zip(frames, preds) if f.energy is not None]
    empty3 = np.zeros((0, 3))
    return {"force_sigma": np.concatenate([p.uncertainty[:, 1] for _, p in with_f] or [np.zeros(0)]),
            "force_error": np.concatenate([p.forces - f.forces for f, p in with_f] or [empty3]),
            "energy_sigma": np.array([np.sqrt(np.sum(p.uncertainty[:, 0] ** 2)) for _, p in with_e]),
            "energy_error": np.array([p.energy - f.energy for f, p in with_e])}


def uncertainty_report(frames: Sequence[Frame], preds: Sequence[FramePrediction]) -> Dict[str, Dict[str, float]]:
    """Calibration figures (metrics.uncertainty_metrics) of the per-atom force uncertainties and of the per-structure
    energy uncertainties of `preds` (predict_frames(..., uncertainty=True)) against the labels of `frames`."""
    a = uncertainty_arrays(frames, preds)
    return {"forces": uncertainty_metrics(a["force_sigma"], a["force_error"]),
            "energy": uncertainty_metrics(a["energy_sigma"], a["energy_error"][:, None])}


def write_predictions(path: str | Path, frames: Sequence[Frame], preds: Sequence[FramePrediction],
                      prefix: str = "MLANet_") -> Path:
    """Extended XYZ of `frames` (with their reference labels) plus the predictions as info `<prefix>energy` (eV),
    `<prefix>stress` (eV/Å^3, Voigt, fully periodic frames) and per-atom `<prefix>forces` (eV/Å), with the
    uncertainties where predicted: info `<prefix>energy_uncertainty` (eV), `<prefix>max_force_uncertainty` (eV/Å)
    and per-atom `<prefix>energies_uncertainty` (eV), `<prefix>forces_uncertainty` (eV/Å); written atomically."""
    structures = []
    for frame, pred in zip(frames, preds):
        atoms = frame.to_atoms()
        atoms.info[prefix + "energy"] = pred.energy
        atoms.arrays[prefix + "forces"] = pred.forces
        if pred.stress is not None:
            atoms.info[prefix + "stress"] = voigt(pred.stress)
        if pred.uncertainty is not None:
            atoms.info[prefix + "energy_uncertainty"] = float(np.sqrt(np.sum(pred.uncertainty[:, 0] ** 2)))
            atoms.info[prefix + "max_force_uncertainty"] = float(pred.uncertainty[:, 1].max())
            atoms.arrays[prefix + "energies_uncertainty"] = pred.uncertainty[:, 0].copy()
            atoms.arrays[prefix + "forces_uncertainty"] = pred.uncertainty[:, 1].copy()
        structures.append(atoms)
    write_atoms(path, structures)
    return Path(path)
