"""Training step time, eager against compiled (training.compile), in one process and one session.

    .venv/bin/python benchmarks/training_speed.py                       (all cases, 1 thread)
    .venv/bin/python benchmarks/training_speed.py --cases ethanol-fast water-fast --steps 40

Each case builds mlanet-train's Trainer twice from the same config, with training.compile false and true, and times
--steps optimisation steps (Trainer.optimisation_step: prediction, loss, backward, clipping, AdamW, EMA) after
--warmup steps; the compiled trainer's warm-up includes its compilations, which are reported apart. rMD17 cases use
benchmarks/rmd17.py's splits (run it once first), water the 192-atom DeePMD-kit frames. Results: results/NAME.{md,json}.
"""

import argparse
import time
from pathlib import Path

import torch
from training_runs import write_results

from paths import ROOT, WATER

RMD17 = ROOT / "runs" / "rmd17"
# case -> (training frames, model options, batch size)
CASES = {"ethanol-fast": (RMD17 / "ethanol" / "train.extxyz", {"preset": "fast", "repulsion": "none"}, 4),
         "ethanol-accurate": (RMD17 / "ethanol" / "train.extxyz", {"preset": "accurate", "repulsion": "none"}, 4),
         "aspirin-fast": (RMD17 / "aspirin" / "train.extxyz", {"preset": "fast", "repulsion": "none"}, 4),
         "water-fast": (WATER, {"preset": "fast"}, 2)}


def time_steps(case: str, compile_step: bool, warmup: int, steps: int, work: Path) -> dict:
    """ms per step (and the warm-up's seconds) of the Trainer of `case`."""
    from mlanet_lammps.train import loop  # torch-side imports after the thread count is set
    from mlanet_lammps.train.config import config_from_dict

    frames, model, batch_size = CASES[case]
    cfg = config_from_dict({
        "data": {"train_file": str(frames), "max_frames": 200, "valid_fraction": 0.1, "lazy": False},
        "model": {"cutoff": 5.0, **model},
        "training": {"output_dir": str(work / f"{case}-{compile_step}"), "batch_size": batch_size,
                     "dtype": "float32", "num_threads": torch.get_num_threads(), "compile": compile_step,
                     "ema_decay": 0.999, "progress": False, "uncertainty": "none"}})
    trainer = loop.Trainer(cfg, loop.prepare_data(cfg), log=lambda _: None)
    batches = []
    while len(batches) < warmup + steps:
        batches += [b.to(trainer.device, trainer.dtype) for b in trainer.train_loader]
    batches = batches[:warmup + steps]

    start = time.perf_counter()
    for batch in batches[:warmup]:
        trainer.optimisation_step(batch)
    warm_s = time.perf_counter() - start
    start = time.perf_counter()
    for batch in batches[warmup:]:
        trainer.optimisation_step(batch)
    per_step = (time.perf_counter() - start) / steps
    atoms = sum(int(b.species.shape[0]) for b in batches[warmup:]) / steps
    return {"ms_per_step": 1e3 * per_step, "us_per_atom_step": 1e6 * per_step / atoms, "atoms_per_step": atoms,
            "warmup_s": warm_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (the compilations among them)")
    parser.add_argument("--steps", type=int, default=60, help="timed steps")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "training_speed")
    parser.add_argument("--name", default="training_speed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, raw = [], {"threads": args.threads, "warmup": args.warmup, "steps": args.steps, "cases": {}}
    for case in args.cases:
        eager, compiled = (time_steps(case, c, args.warmup, args.steps, args.work) for c in (False, True))
        raw["cases"][case] = {"eager": eager, "compiled": compiled}
        rows.append([case, f"{eager['atoms_per_step']:.0f}", f"{eager['ms_per_step']:.1f}",
                     f"{compiled['ms_per_step']:.1f}", f"{eager['ms_per_step'] / compiled['ms_per_step']:.2f}",
                     f"{compiled['warmup_s'] - args.warmup * compiled['ms_per_step'] / 1e3:.0f}"])
    write_results(ROOT / "benchmarks" / "results", args.name, "Training step time: eager against training.compile",
                  f"{args.threads} thread(s), float32, batch as in the case; {args.steps} steps timed after "
                  f"{args.warmup}; compile s = the compiled warm-up less {args.warmup} compiled steps.",
                  ["case", "atoms per step", "eager ms/step", "compiled ms/step", "speed-up", "compile s"], rows, raw)


if __name__ == "__main__":
    main()
