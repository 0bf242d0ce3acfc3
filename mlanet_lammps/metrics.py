"""Error metrics (energy per atom in meV/atom, force components in meV/Å, stress in meV/Å^3) and parity plots."""

from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from .data.batch import GraphBatch
from .predict import Prediction


class ErrorAccumulator:
    """Collects predictions and references over batches; `result()` gives MAE/RMSE, `arrays()` the raw pairs."""

    def __init__(self):
        self.parts: Dict[str, List[np.ndarray]] = {k: [] for k in
                                                   ("e_ref", "e_pred", "f_ref", "f_pred", "s_ref", "s_pred")}

    def update(self, pred: Prediction, batch: GraphBatch) -> None:
        n = batch.num_atoms.to(pred.energy.dtype)
        e_ok = torch.isfinite(batch.energy)
        self.parts["e_ref"].append((batch.energy / n)[e_ok].detach().cpu().double().numpy())
        self.parts["e_pred"].append((pred.energy / n)[e_ok].detach().cpu().double().numpy())
        f_ok = torch.isfinite(batch.forces).all(dim=1)
        self.parts["f_ref"].append(batch.forces[f_ok].detach().cpu().double().numpy().reshape(-1))
        self.parts["f_pred"].append(pred.forces[f_ok].detach().cpu().double().numpy().reshape(-1))
        s_ok = torch.isfinite(batch.stress).all(dim=(1, 2)) & torch.isfinite(pred.stress).all(dim=(1, 2))
        self.parts["s_ref"].append(batch.stress[s_ok].detach().cpu().double().numpy().reshape(-1))
        self.parts["s_pred"].append(pred.stress[s_ok].detach().cpu().double().numpy().reshape(-1))

    def arrays(self) -> Dict[str, np.ndarray]:
        return {k: np.concatenate(v) if v else np.zeros(0) for k, v in self.parts.items()}

    def result(self) -> Dict[str, float]:
        return error_metrics(self.arrays())


def error_metrics(a: Dict[str, np.ndarray]) -> Dict[str, float]:
    """MAE and RMSE (meV/atom, meV/Å, meV/Å^3) from reference/predicted arrays in eV units.

    a: e_ref/e_pred [frames] energies per atom (eV/atom), f_ref/f_pred force components (eV/Å), optional
    s_ref/s_pred stress components (eV/Å^3).
    """
    out: Dict[str, float] = {"frames": float(len(a["e_ref"]))}
    for name, key in (("energy", "e"), ("forces", "f"), ("stress", "s")):
        if f"{key}_ref" not in a:
            continue
        err = (a[f"{key}_pred"] - a[f"{key}_ref"]) * 1000.0  # eV -> meV
        if err.size:
            out[f"{name}_mae"] = float(np.mean(np.abs(err)))
            out[f"{name}_rmse"] = float(np.sqrt(np.mean(err ** 2)))
    return out


UNITS = {"energy": "meV/atom", "forces": "meV/Å", "stress": "meV/Å^3"}


def format_table(metrics: Dict[str, float]) -> str:
    """Plain-text table of MAE and RMSE per quantity."""
    rows = [f"{'quantity':<10}{'MAE':>12}{'RMSE':>12}  unit", "-" * 44]
    for name, unit in UNITS.items():
        if f"{name}_mae" in metrics:
            rows.append(f"{name:<10}{metrics[name + '_mae']:>12.3f}{metrics[name + '_rmse']:>12.3f}  {unit}")
    rows.append(f"frames: {int(metrics.get('frames', 0))}")
    return "\n".join(rows)


def format_groups(tables: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    """Plain-text tables of evaluate.error_tables: RMSE per config_type (energy, forces, stress) and per element
    (forces)."""
    rows = [f"{'config_type':<20}{'frames':>7}{'E RMSE':>10}{'F RMSE':>10}{'S RMSE':>10}  (meV/atom, meV/Å, meV/Å^3)"]
    for name, m in tables["per_config_type"].items():
        values = "".join(f"{m[k]:>10.3f}" if k in m else f"{'-':>10}" for k in
                         ("energy_rmse", "forces_rmse", "stress_rmse"))
        rows.append(f"{name:<20}{int(m['frames']):>7}{values}")
    rows.append(f"{'element':<20}{'atoms':>7}{'F MAE':>10}{'F RMSE':>10}  (meV/Å)")
    for name, m in tables["per_element"].items():
        values = "".join(f"{m[k]:>10.3f}" if k in m else f"{'-':>10}" for k in ("forces_mae", "forces_rmse"))
        rows.append(f"{name:<20}{int(m['atoms']):>7}{values}")
    return "\n".join(rows)


def parity_plot(arrays: Dict[str, np.ndarray], path: str | Path, title: str = "") -> Path:
    """Energy (eV/atom) and force (eV/Å) parity plots side by side, saved as PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    panels = ((axes[0], "e", "energy - mean DFT energy (eV/atom)"), (axes[1], "f", "force component (eV/Å)"))
    for ax, key, label in panels:
        ref, pred = arrays[f"{key}_ref"], arrays[f"{key}_pred"]
        if ref.size and key == "e":  # absolute energies are ~1e2 eV/atom: show them relative to the reference mean
            ref, pred = ref - ref.mean(), pred - ref.mean()
        if ref.size:
            lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
            ax.plot([lo, hi], [lo, hi], "k--", lw=1)
            ax.scatter(ref, pred, s=4, alpha=0.5)
            rmse = 1000 * np.sqrt(np.mean((pred - ref) ** 2))
            unit = "meV/atom" if key == "e" else "meV/Å"
            ax.set_title(f"{'energy' if key == 'e' else 'force component'}: RMSE {rmse:.2f} {unit}")
        ax.set_xlabel(f"DFT {label}")
        ax.set_ylabel(f"MLANet {label}")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path
