"""Calibration of MLANet's per-atom uncertainty on in-distribution and out-of-distribution DFT frames, for each
single-model method against a committee of independently trained models.

    .venv/bin/python benchmarks/uncertainty_calibration.py --work /tmp/ubench --members 3 --max-time 3m

Datasets (shared/data, own splits, seed 0):
  water:   192-atom liquid water (DeePMD example): train / validation / test frames, no OOD set.
  si:      mlearn Si: trained on the bulk groups (AIMD-NVT, Elastic, Vacancy); OOD = the Surface group.
  formate: formate on Cu (NequIP subset): OOD = the 5% of frames with the longest C-O distance (the farthest O from
           its nearest C), trained on frames with shorter ones.
For each, --members models are trained with seeds 0..members-1 (uncertainty: none). Model 0's errors are the errors
judged; its llpr and distance heads are fitted on its training frames and calibrated on the validation frames
(calibration.py), as training does; the committee's uncertainty is the spread of the members' forces (and energies),
calibrated by the same one-scale fit. Reported per set: force Spearman, miscalibration area, catch rate of the worst
5% of force errors when 10% of atoms are flagged, RMS z-score; and the energy Spearman per structure. Writes
benchmarks/results/uncertainty_calibration.{md,json} and uncertainty_vs_error.png. A measurement, not a test.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
import torch

from paths import DATA, ROOT, WATER

sys.path.insert(0, str(ROOT))

from mlanet_lammps.calibration import ValidationErrors, fit_uncertainty  # noqa: E402
from mlanet_lammps.checkpoint import load_model  # noqa: E402
from mlanet_lammps.data.batch import frame_to_graph  # noqa: E402
from mlanet_lammps.data.io import read_frames, write_frames  # noqa: E402
from mlanet_lammps.evaluate import predict_frames  # noqa: E402
from mlanet_lammps.fileio import atomic_write_bytes  # noqa: E402
from mlanet_lammps.metrics import uncertainty_metrics, uncertainty_plot  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def longest_co(frame) -> float:
    """The largest distance from an O atom to its nearest C atom (Å, minimum image)."""
    atoms = frame.to_atoms()
    c, o = np.where(atoms.numbers == 6)[0], np.where(atoms.numbers == 8)[0]
    return max(min(atoms.get_distance(i, j, mic=True) for j in c) for i in o)


def splits(name: str, rng: np.random.Generator):
    """(train, valid, test, ood) frame lists of a dataset."""
    if name == "water":
        frames = read_frames(str(WATER))
        order = rng.permutation(len(frames))
        pick = [frames[i] for i in order]
        return pick[:60], pick[60:80], pick[80:180], []
    if name == "si":
        path = DATA / "mlearn_zuo2020" / "Si_training.extxyz"
        frames = read_frames(str(path))
        groups = [a.info["group"] for a in ase.io.read(path, ":")]
        bulk = [f for f, g in zip(frames, groups) if g != "Surface"]
        ood = [f for f, g in zip(frames, groups) if g == "Surface"]
        order = rng.permutation(len(bulk))
        pick = [bulk[i] for i in order]
        return pick[:140], pick[140:170], pick[170:], ood
    frames = read_frames(str(DATA / "formate_cu_nequip_subset" / "fcu_deal_subset.extxyz"))
    co = np.array([longest_co(f) for f in frames])
    cut = np.quantile(co, 0.95)
    inside = [f for f, d in zip(frames, co) if d < cut]
    ood = [f for f, d in zip(frames, co) if d >= cut]
    order = rng.permutation(len(inside))
    pick = [inside[i] for i in order]
    print(f"formate: C-O OOD cut {cut:.3f} Å, {len(ood)} OOD frames (max {co.max():.3f} Å)", flush=True)
    return pick[:150], pick[150:190], pick[190:330], ood


def train_member(work: Path, name: str, seed: int, args) -> Path:
    out = work / name / f"member{seed}"
    if (out / "best.ckpt").exists():
        return out / "best.ckpt"
    cfg = work / name / f"member{seed}.yaml"
    cfg.write_text(f"""data:
  train_file: {work / name / 'train.extxyz'}
  valid_file: {work / name / 'valid.extxyz'}
model:
  channels: {args.channels}
training:
  output_dir: {out}
  seed: {seed}
  batch_size: 4
  max_epochs: 1000
  max_time: {args.max_time}
  lr: 0.01
  lr_schedule: cosine
  num_threads: {args.threads}
  progress: false
  uncertainty: none
""")
    subprocess.run([sys.executable, "-m", "mlanet_lammps.cli.train", str(cfg)], check=True,
                   stdout=subprocess.DEVNULL)
    return out / "best.ckpt"


def committee_sigma(models, frames):
    """Per-atom force spread [N] (eV/Å, RMS over components of the members' standard deviation) and per-structure
    energy spread [G] (eV) of the members' predictions."""
    preds = [predict_frames(m, frames) for m in models]
    forces = np.stack([np.concatenate([p.forces for p in pm]) for pm in preds])  # [M, N, 3]
    energy = np.array([[p.energy for p in pm] for pm in preds])  # [M, G]
    return np.sqrt(forces.var(axis=0, ddof=1).mean(axis=1)), energy.std(axis=0, ddof=1)


def structure_sigma(atom_sigma_e: np.ndarray, errors: ValidationErrors) -> np.ndarray:
    return np.sqrt(np.bincount(errors.frame_of_atom, weights=atom_sigma_e ** 2, minlength=len(errors.energy_error)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/mlanet-uncertainty"))
    parser.add_argument("--datasets", nargs="+", default=["water", "si", "formate"])
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--max-time", default="3m")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results, plots = {}, {}
    for name in args.datasets:
        rng = np.random.default_rng(0)
        train, valid, test, ood = splits(name, rng)
        (args.work / name).mkdir(parents=True, exist_ok=True)
        write_frames(args.work / name / "train.extxyz", train)
        write_frames(args.work / name / "valid.extxyz", valid)
        start = time.time()
        paths = [train_member(args.work, name, seed, args) for seed in range(args.members)]
        models = [load_model(p) for p in paths]
        print(f"{name}: {len(train)}/{len(valid)}/{len(test)}/{len(ood)} frames, members trained "
              f"({time.time() - start:.0f} s)", flush=True)
        model = models[0]
        graphs = [frame_to_graph(f, float(model.cutoff), model.atomic_numbers.tolist()) for f in train]
        heads = {m: fit_uncertainty(model, graphs, valid, m) for m in ("llpr", "distance")}
        # the committee's one-scale calibration on the validation frames, as for the heads
        valid_err = ValidationErrors.measure(model, valid)
        sf, se = committee_sigma(models, valid)
        has_f = np.isfinite(valid_err.force_error).all(axis=1)
        a_f = np.sqrt(np.mean((valid_err.force_error[has_f] ** 2).sum(1) / (3 * np.maximum(sf[has_f], 1e-12) ** 2)))
        a_e = np.sqrt(np.mean(valid_err.energy_error ** 2 / np.maximum(se, 1e-12) ** 2))
        results[name] = {"frames": {"train": len(train), "valid": len(valid), "test": len(test), "ood": len(ood)},
                         "heads": {m: repr(h) for m, h in heads.items()}, "sets": {}}
        for set_name, frames in (("test", test), ("ood", ood)):
            if not frames:
                continue
            err = ValidationErrors.measure(model, frames)
            row = {"force_rmse_meV": float(1000 * np.sqrt(np.nanmean(err.force_error ** 2))),
                   "energy_rmse_meV_atom": float(1000 * np.sqrt(np.nanmean(
                       (err.energy_error / np.bincount(err.frame_of_atom)) ** 2)))}
            sigmas = {}
            for m, head in heads.items():
                u = head(err.features, err.species).numpy()  # [N, 2]
                sigmas[m] = (u[:, 1], structure_sigma(u[:, 0], err))
            csf, cse = committee_sigma(models, frames)
            sigmas["committee"] = (a_f * csf, a_e * cse)
            for m, (sig_f, sig_e) in sigmas.items():
                row[m] = {"force": uncertainty_metrics(sig_f, err.force_error),
                          "energy": uncertainty_metrics(sig_e, err.energy_error[:, None])}
                plots[f"{name} {set_name}: {m}"] = (sig_f, np.linalg.norm(err.force_error, axis=1))
            results[name]["sets"][set_name] = row
            print(name, set_name, json.dumps({m: row[m]["force"] for m in sigmas}), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(RESULTS / "uncertainty_calibration.json", (json.dumps(results, indent=2) + "\n").encode())
    lines = ["| dataset | set | force RMSE (meV/Å) | method | force Spearman | miscalibration area | catch rate "
             "(worst 5%, 10% flagged) | RMS z | energy Spearman |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        for set_name, row in r["sets"].items():
            for m in ("llpr", "distance", "committee"):
                f, e = row[m]["force"], row[m]["energy"]
                lines.append(f"| {name} | {set_name} | {row['force_rmse_meV']:.1f} | {m} | {f['spearman']:.2f} | "
                             f"{f['miscalibration_area']:.3f} | {f['catch_rate']:.2f} | {f['rms_z']:.2f} | "
                             f"{e.get('spearman', float('nan')):.2f} |")
    atomic_write_bytes(RESULTS / "uncertainty_calibration.md", ("\n".join(lines) + "\n").encode())
    chosen = {k: v for k, v in plots.items() if k.endswith(("llpr", "committee")) and "test" not in k or
              k.startswith("water test")}
    uncertainty_plot(chosen, RESULTS / "uncertainty_vs_error.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
