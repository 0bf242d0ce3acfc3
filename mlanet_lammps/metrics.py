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
    return save_figure(fig, path, title)


def uncertainty_metrics(sigma: np.ndarray, error: np.ndarray, flag_fraction: float = 0.10,
                        worst_fraction: float = 0.05) -> Dict[str, float]:
    """How well per-atom (or per-structure) uncertainties sigma [N] rank and size the errors error [N, k] (k
    Gaussian components each, e.g. the 3 force components of an atom; same unit as sigma).

    Returns:
        spearman: rank correlation of sigma with the error norm |error_i|.
        miscalibration_area: mean over confidence levels p of |observed - p|, where observed is the fraction of
            components with |error| <= z_p sigma (z_p: the two-sided Gaussian quantile); 0 is perfectly calibrated.
        catch_rate: the fraction of the worst `worst_fraction` errors (by norm) that are among the `flag_fraction`
            of entries with the highest sigma (1: all caught; flagging at random catches flag_fraction).
        rms_z: root mean square of error / sigma over the components (1 if calibrated).
        count: entries used.
    """
    from scipy.special import erfinv
    from scipy.stats import spearmanr

    error = error.reshape(len(sigma), -1)
    ok = np.isfinite(error).all(axis=1) & np.isfinite(sigma)
    sigma, error = sigma[ok], error[ok]
    if len(sigma) < 2:
        return {"count": float(len(sigma))}
    norm = np.linalg.norm(error, axis=1)
    z = np.abs(error) / np.maximum(sigma, 1e-300)[:, None]
    levels = np.linspace(0.01, 0.99, 99)
    observed = np.array([(z <= np.sqrt(2.0) * erfinv(p)).mean() for p in levels])
    flagged = np.argsort(-sigma)[:max(1, int(round(flag_fraction * len(sigma))))]
    worst = np.argsort(-norm)[:max(1, int(round(worst_fraction * len(sigma))))]
    return {"spearman": float(spearmanr(sigma, norm).statistic),
            "miscalibration_area": float(np.mean(np.abs(observed - levels))),
            "catch_rate": float(np.isin(worst, flagged).mean()),
            "rms_z": float(np.sqrt(np.mean(z ** 2))),
            "count": float(len(sigma))}


def uncertainty_plot(series: Dict[str, tuple], path: str | Path, unit: str = "eV/Å", title: str = "") -> Path:
    """Per-atom force error |dF_i| against predicted uncertainty u_F,i, log-log, one panel per entry of `series`
    (name -> (sigma [N], error norm [N])), with the lines |dF| = u and the 95% bound of a calibrated Gaussian
    (|dF| = 2.80 u for 3 components), saved as PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(series), figsize=(4.6 * len(series), 4.4), squeeze=False)
    for ax, (name, (sigma, err)) in zip(axes[0], series.items()):
        ok = np.isfinite(sigma) & np.isfinite(err) & (sigma > 0) & (err > 0)
        ax.scatter(sigma[ok], err[ok], s=3, alpha=0.4)
        if ok.any():
            lo, hi = float(min(sigma[ok].min(), err[ok].min())), float(max(sigma[ok].max(), err[ok].max()))
            ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="|dF| = u")
            ax.plot([lo, hi], [2.80 * lo, 2.80 * hi], "r:", lw=1, label="95% bound")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"predicted force uncertainty u_F ({unit})")
        ax.set_ylabel(f"force error |dF| ({unit})")
        ax.set_title(name)
        ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path, title)


def save_figure(fig, path: str | Path, title: str = "") -> Path:
    """Save a matplotlib figure as PNG atomically (temp file + rename), with an overall title, and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path


def format_uncertainty(report: Dict[str, Dict[str, float]]) -> str:
    """Plain-text table of evaluate.uncertainty_report."""
    rows = [f"{'uncertainty':<12}{'count':>7}{'Spearman':>10}{'miscal.':>9}{'caught':>8}{'RMS z':>8}"
            "  (miscalibration area; worst 5% of errors among the 10% most uncertain)"]
    for name, m in report.items():
        if "spearman" in m:
            rows.append(f"{name:<12}{int(m['count']):>7}{m['spearman']:>10.2f}{m['miscalibration_area']:>9.3f}"
                        f"{m['catch_rate']:>8.2f}{m['rms_z']:>8.2f}")
    return "\n".join(rows)
