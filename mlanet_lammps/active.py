"""Active learning: MD with the current model -> frames whose largest force uncertainty passes a threshold -> a
diverse subset -> labelled by an ASE calculator -> fine-tuned model -> the next iteration.

Everything lives in `output_dir`:
  state.json                  the last finished iteration and its model (written atomically)
  report.csv                  one row per iteration (written atomically): flagged fraction, labels, test errors, time
  iter_K/md.extxyz            the sampled MD frames of iteration K with their per-atom force uncertainty (engine
                              lammps: the frames LAMMPS flagged; its runs in iter_K/run_N)
  iter_K/md_frames.json       the number of sampled frames (written last: the MD of iteration K is done)
  iter_K/labels/NNN.extxyz    each labelled frame, written atomically as it arrives
  iter_K/train/               the fine-tuning run (best.ckpt: the model of iteration K, calibrated)
A crash in iteration K resumes there: finished MD is read back, labelled frames are not labelled again and the
fine-tuning resumes from its last.ckpt.
"""

import csv
import importlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import ase
import ase.data
import ase.io
import numpy as np
import yaml

from .calculator import MLANetCalculator
from .calibration import atom_features
from .checkpoint import load_checkpoint, load_model
from .data.batch import frame_to_graph
from .data.io import Frame, read_frames, write_atoms
from .errors import MLANetInputError
from .evaluate import error_report, predict_frames
from .fileio import atomic_write_bytes


@dataclass
class ActiveConfig:
    """mlanet-active's configuration (YAML; relative paths are relative to the file).

    model: the calibrated checkpoint to start from. train_file: the labelled frames it was trained on (new labels
    are added to them). test_file: a fixed test set labelled like the new frames. start_file: structures the MD starts
    from. labeller: {module, class, kwargs}: any ASE calculator. temperatures (K), pressures (bar; null: constant
    volume), steps, timestep_fs, sample_every: MD from every start structure at every temperature and pressure.
    engine: 'ase' (Langevin NVT, or isotropic MTK NPT for periodic structures; every sample kept) or 'lammps'
    (Nose-Hoover NVT/NPT in the venv's lmp on lammps_ranks MPI ranks, periodic structures; LAMMPS writes the
    flagged frames itself, at most one per sample_every steps). threshold: largest per-atom force
    uncertainty (eV/Å) that flags a frame. max_labels: frames labelled per iteration (farthest-point sampling of the
    flagged frames in the model's feature space). fine_tune: training options of each fine-tuning run
    (mlanet-train's training section, e.g. max_epochs, max_time, lr).
    """

    model: str
    train_file: str
    test_file: str
    start_file: str
    labeller: Dict[str, Any]
    output_dir: str = "runs/active"
    iterations: int = 3
    engine: str = "ase"
    lammps_ranks: int = 1
    temperatures: List[float] = field(default_factory=lambda: [300.0])
    pressures: List[Optional[float]] = field(default_factory=lambda: [None])
    steps: int = 200
    timestep_fs: float = 0.5
    sample_every: int = 10
    threshold: float = 0.3
    max_labels: int = 8
    seed: int = 0
    fine_tune: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> "ActiveConfig":
        path = Path(path)
        if not path.is_file():
            raise MLANetInputError(str(path), "configuration file not found", "check the path")
        raw = yaml.safe_load(path.read_text()) or {}
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise MLANetInputError(str(path), f"unknown option(s) {', '.join(unknown)}",
                                   f"use only {', '.join(sorted(known))}")
        missing = [k for k in ("model", "train_file", "test_file", "start_file", "labeller") if k not in raw]
        if missing:
            raise MLANetInputError(str(path), f"missing option(s) {', '.join(missing)}",
                                   "see the example in examples/active/active.yaml")
        for key in ("model", "train_file", "test_file", "start_file", "output_dir"):
            if key in raw and not Path(str(raw[key])).is_absolute():
                raw[key] = str((path.parent / str(raw[key])).resolve())
        cfg = cls(**raw)
        labeller = cfg.labeller if isinstance(cfg.labeller, dict) else {}
        if not {"module", "class"} <= set(labeller):
            raise MLANetInputError(str(path), "labeller needs module and class (and optionally kwargs)",
                                   "e.g. labeller: {module: tblite.ase, class: TBLite, kwargs: {method: GFN1-xTB}}")
        checks = [(cfg.engine in ("ase", "lammps"), f"engine {cfg.engine!r} is not ase or lammps"),
                  (cfg.lammps_ranks >= 1, "lammps_ranks must be >= 1"),
                  (cfg.iterations >= 1, "iterations must be >= 1"), (cfg.steps >= 1, "steps must be >= 1"),
                  (cfg.sample_every >= 1, "sample_every must be >= 1"), (cfg.threshold > 0, "threshold must be > 0"),
                  (cfg.max_labels >= 1, "max_labels must be >= 1"), (cfg.timestep_fs > 0, "timestep_fs must be > 0")]
        for ok, problem in checks:
            if not ok:
                raise MLANetInputError(str(path), problem, "fix the value")
        return cfg

    def md_runs(self, starts: Sequence[ase.Atoms]) -> List[Tuple[ase.Atoms, float, Optional[float]]]:
        """(start structure, temperature K, pressure bar or None) of every MD run, in order."""
        return [(s, t, p) for s in starts for t in self.temperatures for p in self.pressures]


def make_labeller(spec: Dict[str, Any]) -> Any:
    """The ASE calculator `spec` names: {module, class, kwargs}."""
    try:
        cls = getattr(importlib.import_module(spec["module"]), spec["class"])
    except (ImportError, AttributeError) as err:
        raise MLANetInputError("labeller", f"cannot import {spec['module']}.{spec['class']} ({err})",
                               "install the package that provides it (tblite: pip install tblite)") from None
    return cls(**(spec.get("kwargs") or {}))


def frame_vectors(model, frames: Sequence[ase.Atoms]) -> np.ndarray:
    """One vector per structure for diversity [M, num_species * readout_hidden]: the mean readout features of each
    element of the model (zero for an element absent from the structure), concatenated."""
    numbers = model.atomic_numbers.tolist()
    graphs = [frame_to_graph(Frame.from_atoms(a, source="md"), float(model.cutoff), numbers) for a in frames]
    features, species = (t.numpy() for t in atom_features(model, graphs))  # [N, H], [N]
    frame_of_atom = np.repeat(np.arange(len(frames)), [len(a) for a in frames])
    sums = np.zeros((len(frames), len(numbers), features.shape[1]))
    np.add.at(sums, (frame_of_atom, species), features)
    counts = np.zeros((len(frames), len(numbers)))
    np.add.at(counts, (frame_of_atom, species), 1.0)
    return (sums / np.maximum(counts, 1.0)[:, :, None]).reshape(len(frames), -1)


def farthest_points(vectors: np.ndarray, count: int, first: int) -> List[int]:
    """Indices of `count` rows of vectors [M, D], starting with row `first`, each next one the farthest (Euclidean,
    per feature standardised) from those chosen."""
    z = (vectors - vectors.mean(0)) / np.maximum(vectors.std(0), 1e-12)
    chosen = [first]
    dist = np.linalg.norm(z - z[first], axis=1)
    while len(chosen) < min(count, len(z)):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(z - z[nxt], axis=1))
    return chosen


def run_md(model_path: Path, starts: Sequence[ase.Atoms], cfg: ActiveConfig, seed: int) -> List[ase.Atoms]:
    """MD in ASE with the model of `model_path` from each start structure at each temperature and pressure
    (Langevin NVT for pressure None, else isotropic MTK NPT); every sample_every steps a copy of the structure with
    its per-atom force uncertainty ("mlanet_force_sigma") and the largest one (info "max_force_sigma")."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.nose_hoover_chain import IsotropicMTKNPT
    from ase.md.velocitydistribution import thermalize_momenta

    calc = MLANetCalculator(model_path, dtype="float32", uncertainty=True)
    samples: List[ase.Atoms] = []
    for k, (start, temperature, pressure) in enumerate(cfg.md_runs(starts)):
        atoms = start.copy()
        atoms.calc = calc
        rng = np.random.default_rng(seed * 1000 + k)
        thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
        dt = cfg.timestep_fs * units.fs
        if pressure is None:
            dyn = Langevin(atoms, dt, temperature_K=temperature, friction=0.01 / units.fs, fixcm=False, rng=rng)
        elif not atoms.pbc.all():
            raise MLANetInputError("pressures", f"{pressure} bar asked for a start structure that is not periodic in "
                                   "all directions", "use pressures: [null] (constant volume) for it")
        else:
            dyn = IsotropicMTKNPT(atoms, dt, temperature_K=temperature, pressure_au=pressure * units.bar,
                                  tdamp=100 * dt, pdamp=1000 * dt)

        def sample(atoms=atoms, temperature=temperature, pressure=pressure):
            sigma = np.asarray(calc.get_property("forces_uncertainty", atoms))
            frame = ase.Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
            frame.arrays["mlanet_force_sigma"] = sigma.copy()
            frame.info.update(max_force_sigma=float(sigma.max()), temperature_K=float(temperature))
            if pressure is not None:
                frame.info["pressure_bar"] = float(pressure)
            samples.append(frame)

        dyn.attach(sample, interval=cfg.sample_every)
        dyn.run(cfg.steps)
    return samples


LAMMPS_MD = """units metal
atom_style atomic
boundary p p p
read_data start.data
variable mlanet_elements string "{elements}"
variable mlanet_uncertainty string yes
variable mlanet_flag_threshold equal {threshold}
variable mlanet_flag_file string flagged.extxyz
variable mlanet_flag_every equal {every}
include model.lammps.in
timestep {dt}
velocity all create {temperature} {seed} mom yes rot yes dist gaussian
fix md all {ensemble}
thermo {every}
run {steps}
"""


def run_lammps_md(model_path: Path, starts: Sequence[ase.Atoms], cfg: ActiveConfig, seed: int, workdir: Path
                  ) -> Tuple[List[ase.Atoms], int]:
    """MD in LAMMPS (the venv's lmp, cfg.lammps_ranks MPI ranks) with the model of `model_path` exported, from each
    start structure at each temperature and pressure (Nose-Hoover NVT, or NPT with isotropic cell fluctuations).
    Returns the frames LAMMPS flagged (largest force uncertainty above cfg.threshold, at most one per
    sample_every steps; info "max_force_sigma") and the number of sampling points (steps // sample_every + 1 per
    run), the count the flagged fraction refers to."""
    import subprocess
    import sys

    from .lammps.export import export

    lmp = Path(sys.prefix) / "bin" / "lmp"
    if not lmp.exists():
        raise MLANetInputError("engine: lammps", f"{lmp} not found", "build LAMMPS into the venv (bash run.sh setup)")
    export(model_path, workdir / "model.mliap.pt", dtype="float32", device="auto")
    model = load_model(model_path)
    elements = [ase.data.chemical_symbols[z] for z in model.atomic_numbers.tolist()]
    dt_ps = cfg.timestep_fs / 1000.0
    flagged: List[ase.Atoms] = []
    points = 0
    for k, (start, temperature, pressure) in enumerate(cfg.md_runs(starts)):
        if not start.pbc.all():
            raise MLANetInputError("engine: lammps", "a start structure is not periodic in all directions",
                                   "use engine: ase for molecules and slabs")
        run_dir = workdir / f"run_{k}"
        run_dir.mkdir(exist_ok=True)
        for name in ("model.mliap.pt", "model.lammps.in"):
            (run_dir / name).write_bytes((workdir / name).read_bytes())
        ase.io.write(run_dir / "start.data", start, format="lammps-data", specorder=elements, masses=True,
                     units="metal", atom_style="atomic")
        damp = f"{100 * dt_ps:g}"
        ensemble = (f"nvt temp {temperature} {temperature} {damp}" if pressure is None else
                    f"npt temp {temperature} {temperature} {damp} iso {pressure} {pressure} {10 * float(damp):g}")
        (run_dir / "in.lammps").write_text(LAMMPS_MD.format(
            elements=" ".join(elements), threshold=cfg.threshold, every=cfg.sample_every, dt=dt_ps,
            temperature=temperature, seed=seed * 1000 + k + 1, ensemble=ensemble, steps=cfg.steps))
        (run_dir / "flagged.extxyz").unlink(missing_ok=True)
        command = ([] if cfg.lammps_ranks == 1 else ["mpirun", "-np", str(cfg.lammps_ranks)]) + [
            str(lmp), "-in", "in.lammps", "-log", "log.lammps"]
        proc = subprocess.run(command, cwd=run_dir, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
            raise RuntimeError(f"LAMMPS failed in {run_dir} (exit {proc.returncode}): {tail}")
        points += cfg.steps // cfg.sample_every + 1
        if (run_dir / "flagged.extxyz").exists():
            for frame in ase.io.read(run_dir / "flagged.extxyz", ":"):
                frame.info.update(max_force_sigma=frame.info["mlanet_max_force_sigma"],
                                  temperature_K=float(temperature))
                flagged.append(frame)
    return flagged, points


def label(frames: Sequence[ase.Atoms], labeller: Any, directory: Path, log: Callable[[str], None]) -> List[Path]:
    """Energies and forces (and the stress of fully periodic frames) of `frames` from `labeller`, each written to
    directory/NNN.extxyz atomically as soon as it is known; frames already there are not labelled again."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        path = directory / f"{i:03d}.extxyz"
        if not path.exists():
            atoms = ase.Atoms(frame.numbers, frame.positions, cell=frame.cell, pbc=frame.pbc)
            atoms.calc = labeller
            atoms.info["energy"] = float(atoms.get_potential_energy())
            atoms.arrays["forces"] = np.array(atoms.get_forces())
            atoms.calc = None
            atoms.info["config_type"] = "active"
            write_atoms(path, [atoms])
            log(f"  labelled {path}")
        paths.append(path)
    return paths


def fine_tune(cfg: ActiveConfig, model_path: Path, label_files: List[Path], out: Path) -> Path:
    """Fine-tune `model_path` on the initial training frames plus `label_files` (mlanet-train with
    training.init_from, the checkpoint's training options updated by cfg.fine_tune); resumes an interrupted run.
    Returns the calibrated best.ckpt."""
    from .train.config import config_from_dict
    from .train.loop import train

    if (out / "best.ckpt").exists() and (out / "done").exists():
        return out / "best.ckpt"
    stored = load_checkpoint(model_path).get("config") or {}
    training = {k: v for k, v in (stored.get("training") or {}).items() if k not in ("init_from", "output_dir")}
    training.update(cfg.fine_tune)
    training.update(init_from=str(model_path), output_dir=str(out), progress=False, seed=cfg.seed)
    data = {k: v for k, v in (stored.get("data") or {}).items() if k in ("energy_key", "forces_key", "stress_key")}
    data.update(train_file=[cfg.train_file] + [str(p) for p in label_files], valid_fraction=0.2)
    resume = (out / "last.ckpt").exists()
    train(config_from_dict({"data": data, "training": training}, "fine-tuning"), resume=resume, log=lambda _: None)
    atomic_write_bytes(out / "done", b"")
    return out / "best.ckpt"


def errors_on(model_path: Path, test: Sequence[Frame]) -> Dict[str, float]:
    """Error metrics (metrics.error_metrics) of the model at `model_path` on the test frames."""
    model = load_model(model_path)
    return error_report(test, predict_frames(model, test)).metrics


REPORT_COLUMNS = ["iteration", "model", "md_frames", "flagged", "flagged_fraction", "labelled", "train_labels",
                  "test_energy_rmse", "test_forces_rmse", "seconds"]


def run_active(cfg: ActiveConfig, log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """Run (or resume) the loop; returns the report rows (iteration 0: the starting model)."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"iteration": 0, "model": cfg.model,
                                                                            "labels": [], "rows": []}
    labeller = make_labeller(cfg.labeller)
    test = read_frames(cfg.test_file)
    starts = ase.io.read(cfg.start_file, ":")
    if not state["rows"]:
        state["rows"].append(dict(iteration=0, model=cfg.model, md_frames=0, flagged=0, flagged_fraction=float("nan"),
                                  labelled=0, train_labels=0, **error_columns(errors_on(Path(cfg.model), test)),
                                  seconds=0.0))
        save_state(out, state, log)
    for k in range(state["iteration"] + 1, cfg.iterations + 1):
        start = time.time()
        it = out / f"iter_{k}"
        it.mkdir(exist_ok=True)
        model_path = Path(state["model"])
        md_path, md_count = it / "md.extxyz", it / "md_frames.json"
        if md_count.exists():
            samples = ase.io.read(md_path, ":") if md_path.stat().st_size else []
            points = json.loads(md_count.read_text())["md_frames"]
        else:
            if cfg.engine == "lammps":
                samples, points = run_lammps_md(model_path, starts, cfg, cfg.seed + k, it)
            else:
                samples = run_md(model_path, starts, cfg, cfg.seed + k)
                points = len(samples)
            write_atoms(md_path, samples)
            atomic_write_bytes(md_count, json.dumps({"md_frames": points}).encode())
        sigma_max = np.array([s.info["max_force_sigma"] for s in samples])
        flagged = [s for s, m in zip(samples, sigma_max) if m > cfg.threshold]
        log(f"iteration {k}: {len(flagged)} of {points} MD frames flagged (max force uncertainty > "
            f"{cfg.threshold} eV/Å)")
        chosen: List[ase.Atoms] = []
        if flagged:
            vectors = frame_vectors(load_model(model_path), flagged)
            first = int(np.argmax([s.info["max_force_sigma"] for s in flagged]))
            chosen = [flagged[i] for i in farthest_points(vectors, cfg.max_labels, first)]
        labels = label(chosen, labeller, it / "labels", log)
        state["labels"] = sorted(set(state["labels"]) | {str(p) for p in labels})
        new_model = fine_tune(cfg, model_path, [Path(p) for p in state["labels"]], it / "train") if labels \
            else model_path
        row = dict(iteration=k, model=str(new_model), md_frames=points, flagged=len(flagged),
                   flagged_fraction=len(flagged) / max(points, 1), labelled=len(labels),
                   train_labels=len(state["labels"]), **error_columns(errors_on(new_model, test)),
                   seconds=time.time() - start)
        state.update(iteration=k, model=str(new_model))
        state["rows"].append(row)
        save_state(out, state, log)
    return state["rows"]


def error_columns(metrics: Dict[str, float]) -> Dict[str, float]:
    """The report's test-error columns (meV/atom, meV/Å) from error metrics."""
    return {"test_energy_rmse": metrics.get("energy_rmse", float("nan")),
            "test_forces_rmse": metrics.get("forces_rmse", float("nan"))}


def save_state(out: Path, state: Dict[str, Any], log: Callable[[str], None]) -> None:
    """state.json and report.csv, atomically, and the newest report row printed."""
    atomic_write_bytes(out / "state.json", (json.dumps(state, indent=1) + "\n").encode())
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=REPORT_COLUMNS)
    writer.writeheader()
    writer.writerows(state["rows"])
    atomic_write_bytes(out / "report.csv", buf.getvalue().encode())
    r = state["rows"][-1]
    log(f"iteration {r['iteration']}: flagged {r['flagged']}/{r['md_frames']} MD frames, labelled {r['labelled']} "
        f"({r['train_labels']} in all), test RMSE energy {r['test_energy_rmse']:.2f} meV/atom, forces "
        f"{r['test_forces_rmse']:.1f} meV/Å, {r['seconds']:.0f} s -> {r['model']}")

