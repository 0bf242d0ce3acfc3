"""ASE calculator for MLANet: energy, free_energy, forces, stress (periodic cells), per-atom energies and, for a
calibrated model, their uncertainties."""

from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from .data.batch import frame_to_graph
from .data.io import Frame, voigt
from .devices import parse_dtype, resolve_device
from .errors import MLANetInputError
from .model.forces import EnergyAndEdgeGradient
from .model.mlanet import MLANet
from .predict import predict_with


class MLANetCalculator(Calculator):
    """ASE calculator over a trained MLANet.

    Args:
        model: an MLANet module or a path to a checkpoint (.ckpt).
        device: 'cpu', 'cuda', 'cuda:N', 'auto' (cuda when available) or a torch.device, as in the command-line
            tools.
        dtype: 'float64' or torch.float64 (default, exact comparisons), 'float32' or torch.float32 (faster MD).
        compile: evaluate through torch.compile (model/compiled.py, the evaluator LAMMPS uses), about 2x faster
            per step than eager PyTorch on a CPU. The first call, and any call with more atoms or edges than the
            padded sizes compiled so far, compiles for tens of seconds (cached on disk for later runs): for MD, not
            for many different structures.
        uncertainty: also compute the uncertainties of the model's calibrated head (docs/uncertainty.md). None
            (default): when the model has one; True: required (an error without one); False: never.
    Results: energy, free_energy (eV), forces (eV/Å), energies (eV per atom), stress (eV/Å^3, Voigt, if fully
    periodic); with uncertainty: energies_uncertainty (eV per atom), forces_uncertainty (eV/Å per atom, for each
    Cartesian component), energy_uncertainty (eV, the per-atom ones added in quadrature).

    Example:
        >>> atoms.calc = MLANetCalculator("runs/water-demo/best.ckpt")
        >>> atoms.get_forces(), atoms.calc.get_property("forces_uncertainty").max()
    """

    implemented_properties = ["energy", "free_energy", "forces", "energies", "stress", "energy_uncertainty",
                              "energies_uncertainty", "forces_uncertainty"]

    def __init__(self, model: MLANet | str | Path, device: str | torch.device = "cpu",
                 dtype: str | torch.dtype = torch.float64, compile: bool = False,
                 uncertainty: Optional[bool] = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(dtype, str):
            dtype = parse_dtype(dtype, "MLANetCalculator(dtype=...)")
        if not isinstance(device, torch.device):
            device = resolve_device(device, where="MLANetCalculator(device=...)")
        if isinstance(model, (str, Path)):
            from .checkpoint import load_model
            model = load_model(model, dtype=dtype, device=device)
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device, self.dtype, self.compile = device, dtype, compile
        has_head = len(self.model.uncertainty) > 0
        if uncertainty and not has_head:
            raise MLANetInputError("MLANetCalculator(uncertainty=True)", "this model has no fitted uncertainty",
                                   "train with training.uncertainty: llpr (the default) or run mlanet-calibrate on "
                                   "the checkpoint")
        self.uncertainty = has_head if uncertainty is None else bool(uncertainty)
        self._energy_grad: Optional[torch.nn.Module] = None

    def energy_grad(self) -> torch.nn.Module:
        """The model (compiled if asked) wrapped for energies and edge gradients, built on first use."""
        if self._energy_grad is None:
            model = self.model
            if self.compile:
                from .model.compiled import compiled_model
                model = compiled_model(model)
            self._energy_grad = EnergyAndEdgeGradient(model, uncertainty=self.uncertainty)
        return self._energy_grad

    def calculate(self, atoms=None, properties: Optional[List[str]] = None, system_changes=all_changes):
        super().calculate(atoms, properties or ["energy"], system_changes)
        frame = Frame.from_atoms(self.atoms, source="atoms")
        graph = frame_to_graph(frame, float(self.model.cutoff), self.model.atomic_numbers.tolist(),
                               mirrored=self.compile).to(self.device, self.dtype)
        pred = predict_with(self.energy_grad(), graph)
        energy = float(pred.energy[0].detach())
        self.results = {"energy": energy, "free_energy": energy,
                        "forces": pred.forces.detach().cpu().double().numpy(),
                        "energies": pred.atom_energy.detach().cpu().double().numpy()}
        if self.atoms.pbc.all():
            self.results["stress"] = voigt(pred.stress[0].detach().cpu().double().numpy())
        if self.uncertainty:
            u = pred.atom_uncertainty.detach().cpu().double().numpy()  # [N, 2]
            self.results.update(energies_uncertainty=u[:, 0], forces_uncertainty=u[:, 1],
                                energy_uncertainty=float(np.sqrt(np.sum(u[:, 0] ** 2))))
