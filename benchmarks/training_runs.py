"""What the training benchmarks share: the formate/Cu data, a config writer, one `mlanet-train` run as a subprocess
(under /usr/bin/time -v with its peak memory and the epoch times of its metrics.csv, or plainly, once per folder),
a trained model's errors on labelled frames, and the results writer."""

import csv
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import ase.io
import numpy as np
import yaml

from paths import DATA, ROOT

FORMATE = DATA / "formate_cu_nequip_subset" / "fcu_deal_subset.extxyz"  # 1000 frames x 52 atoms (see SOURCES.txt)
MAXRSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


def write_config(path: Path, output_dir: Path, data: Dict, training: Dict) -> Path:
    """A config on the formate frames with the package's default model, `data` and `training` set over it."""
    raw = {"data": {"train_file": str(FORMATE), **data},
           "training": {"output_dir": str(output_dir), "progress": False, "uncertainty": "none", **training}}
    path.write_text(yaml.safe_dump(raw))
    return path


def tree_rss_kb(pid: int) -> int:
    """Resident memory (kB) of process `pid` and all its descendants (0 once it has ended)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) if "VmRSS" in status else 0
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, AttributeError):
            continue
    return total


def measured_run(command: Sequence[str], output_dir: Path) -> Dict:
    """Run `command` (an mlanet-train command line, optionally under torchrun) under /usr/bin/time -v, sampling the
    memory of its process tree every 50 ms. Returns wall time (s), peak RSS of the largest single process
    (/usr/bin/time, MB), peak of the summed RSS of all its processes (MB, sampled), and the epoch times (s) of
    metrics.csv."""
    start = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-v", *command], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_kb(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out, err = proc.communicate()
    sampler.join()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{out[-2000:]}\n{err[-3000:]}")
    rows = list(csv.DictReader((output_dir / "metrics.csv").read_text().splitlines()))
    return {"command": " ".join(command), "wall_s": wall, "max_rss_mb": int(MAXRSS.search(err).group(1)) / 1024,
            "tree_rss_peak_mb": peak[0] / 1024, "epoch_s": [float(r["epoch_time_s"]) for r in rows],
            "log": out.strip().splitlines()}


def train_once(config: Dict, run: Path) -> Path:
    """Train `config` (a parsed mlanet-train configuration) into `run` unless run/best.ckpt exists; the log goes to
    run/train.log. Returns `run`."""
    if (run / "best.ckpt").exists():
        return run
    run.mkdir(parents=True, exist_ok=True)
    config = {**config, "training": {**config["training"], "output_dir": str(run)}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    with open(run / "train.log", "w") as log:
        subprocess.run([str(Path(sys.executable).parent / "mlanet-train"), str(run / "config.yaml")], check=True,
                       stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return run


def train_all(runs: Sequence[Tuple[Dict, Path]], parallel: int) -> None:
    """train_once each (config, run folder) of `runs`, `parallel` at a time."""
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda job: train_once(*job), runs))


def test_errors(checkpoint: Path, frames: Path) -> Dict:
    """Errors of `checkpoint` (float64) on the labelled frames of `frames`: per-frame total-energy errors (meV), atoms
    per frame, and all force-component errors (meV/Å), as numpy arrays, each frame's info, plus the epochs and
    training seconds of the run's metrics.csv and its training section (config.yaml)."""
    from mlanet_lammps.calculator import MLANetCalculator  # torch: imported only by the scripts that evaluate

    calc = MLANetCalculator(checkpoint, dtype="float64", device="cpu")
    de, n, df, info = [], [], [], []
    for atoms in ase.io.read(frames, ":"):
        info.append(dict(atoms.info))
        e_ref, f_ref = atoms.get_potential_energy(), atoms.get_forces().copy()
        atoms.calc = calc
        de.append(atoms.get_potential_energy() - e_ref)
        n.append(len(atoms))
        df.append((atoms.get_forces() - f_ref).ravel())
    rows = list(csv.DictReader((checkpoint.parent / "metrics.csv").read_text().splitlines()))
    return {"energy": 1000 * np.array(de), "atoms": np.array(n), "forces": 1000 * np.concatenate(df), "info": info,
            "epochs": len(rows), "train_s": sum(float(r["epoch_time_s"]) for r in rows),
            "training": yaml.safe_load((checkpoint.parent / "config.yaml").read_text())["training"]}


def training_cell(errors: Dict) -> str:
    """'30 min, 209 epochs, 1 thread, lr 0.005': how a run of test_errors was trained."""
    t = errors["training"]
    return (f"{errors['train_s'] / 60:.0f} min, {errors['epochs']} epochs, {t.get('num_threads')} thread(s), "
            f"lr {t['lr']:g}")


def mae_rmse(err: np.ndarray) -> tuple:
    """(mean absolute, root mean square) of `err`."""
    return float(np.abs(err).mean()), float(np.sqrt((err ** 2).mean()))


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    return f"{cpu}, {os.cpu_count()} cores, {platform.platform()}"


def write_results(out: Path, name: str, title: str, setting: str, header: List[str], rows: List[List],
                  raw: Dict) -> None:
    """`out`/`name`.md (title, the command line of this script and `setting`, then the table) and `out`/`name`.json
    (`raw` with the command and machine)."""
    command = f"python benchmarks/{Path(sys.argv[0]).name} {' '.join(sys.argv[1:])}".strip()
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    text = f"# {title}\n\n`{command}` on {machine()}; {setting}\n\n" + "\n".join(table) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(text)
    (out / f"{name}.json").write_text(json.dumps({"command": command, "machine": machine(), **raw}, indent=1))
    print(text)
