"""ASE calculator for MLANet: energy, free_energy, forces, stress (periodic cells) and per-atom energies."""

from pathlib import Path
from typing import List, Optional

import torch
from ase.calculators.calculator import Calculator, all_changes

from .data.batch import frame_to_graph
from .data.io import Frame, voigt
from .model.mlanet import MLANet
from .predict import predict


class MLANetCalculator(Calculator):
    """ASE calculator over a trained MLANet.

    Args:
        model: an MLANet module or a path to a checkpoint (.ckpt).
        device: torch device ('cpu', 'cuda', ...).
        dtype: torch.float64 (default, exact comparisons) or torch.float32 (faster MD).
    Results: energy, free_energy (eV), forces (eV/Å), energies (eV per atom), stress (eV/Å^3, Voigt, if fully periodic).
    """

    implemented_properties = ["energy", "free_energy", "forces", "energies", "stress"]

    def __init__(self, model: MLANet | str | Path, device: str = "cpu", dtype: torch.dtype = torch.float64, **kwargs):
        super().__init__(**kwargs)
        if isinstance(model, (str, Path)):
            from .train.checkpoint import load_model
            model = load_model(model, dtype=dtype, device=device)
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device, self.dtype = device, dtype

    def calculate(self, atoms=None, properties: Optional[List[str]] = None, system_changes=all_changes):
        super().calculate(atoms, properties or ["energy"], system_changes)
        frame = Frame.from_atoms(self.atoms, source="atoms")
        graph = frame_to_graph(frame, float(self.model.cutoff), self.model.atomic_numbers.tolist()).to(self.device, self.dtype)
        pred = predict(self.model, graph)
        energy = float(pred.energy[0].detach())
        self.results = {"energy": energy, "free_energy": energy,
                        "forces": pred.forces.detach().cpu().double().numpy(),
                        "energies": pred.atom_energy.detach().cpu().double().numpy()}
        if self.atoms.pbc.all():
            self.results["stress"] = voigt(pred.stress[0].detach().cpu().double().numpy())
