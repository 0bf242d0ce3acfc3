"""The training loop: data preparation, loss, AdamW + schedule, EMA, clipping, early stopping, time budget,
progress bar, CSV metrics, atomic best/last checkpoints and exact resume, in one process or data-parallel over the
processes torchrun starts (train/distributed.py)."""

import csv
import hashlib
import io
import math
import random
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from ase.data import atomic_numbers as ATOMIC_NUMBERS
from ase.data import chemical_symbols
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..calibration import check_labels, fit_uncertainty, save_with_uncertainty
from ..checkpoint import load_checkpoint, load_model, model_from_payload, save_checkpoint
from ..data.batch import GraphBatch, collate, frame_to_graph
from ..data.dataset import GraphDataset
from ..data.io import FileSpec, Frame, elements, expand_files, read_frames, write_frames
from ..devices import parse_dtype, resolve_device
from ..errors import MLANetInputError
from ..evaluate import error_report, predict_frames
from ..fileio import atomic_write_bytes
from ..metrics import ErrorAccumulator, error_metrics
from ..model.compiled import traced_tensor_products
from ..model.compiled_training import CompiledTrainingGradient
from ..model.forces import EnergyAndEdgeGradient
from ..model.mlanet import MLANet, ModelConfig
from ..model.repulsion import switch_radii
from ..predict import Prediction, predict, predict_with
from .config import Config, parse_duration
from .distributed import SINGLE, GlobalBatches, Ranks, process_group, ranks_from_env, shard
from .statistics import force_rms, neighbour_statistics, reference_energies, split_indices


class TrainingDiverged(RuntimeError):
    """The loss became NaN or inf; the last good checkpoint is kept."""


def file_sha256(specs: Sequence[Optional[FileSpec]]) -> str:
    """sha256 over the contents of every file of the data options `specs` (None: skipped)."""
    h = hashlib.sha256()
    for spec in specs:
        for path in expand_files(spec) if spec else ():
            h.update(path.read_bytes())
    return h.hexdigest()


@dataclass
class PreparedData:
    train: Sequence[GraphBatch]  # the graphs of the training frames: built (a list), or built when used (GraphDataset)
    valid: Sequence[GraphBatch]
    valid_frames: List[Frame]
    model_config: ModelConfig
    data_hash: str
    initial_state: Optional[Dict[str, torch.Tensor]] = None  # fine-tuning: the weights to start from


def symbols(numbers: Sequence[int]) -> str:
    """The element symbols of atomic numbers, e.g. 'H O' for [1, 8] (error messages)."""
    return " ".join(chemical_symbols[z] for z in numbers)


def element_reference_energies(frames: Sequence[Frame], atomic_numbers: Sequence[int],
                               e0s: Optional[Dict[str, float]] = None,
                               kept: Optional[Sequence[float]] = None) -> List[float]:
    """Reference energies (eV) of the elements `atomic_numbers`: the isolated-atom energies `e0s` (element symbol ->
    eV), which must name each of them, or else the least-squares fit on `frames` (reference_energies), where an
    element absent from `frames` keeps its `kept` energy (fine-tuning: the checkpoint's)."""
    if e0s is not None:
        by_number = {ATOMIC_NUMBERS[s]: e for s, e in e0s.items()}
        missing = [z for z in atomic_numbers if z not in by_number]
        if missing:
            raise MLANetInputError("data.e0s", f"no energy for {symbols(missing)} (the model's elements: "
                                   f"{symbols(atomic_numbers)})",
                                   "add the isolated-atom energy (eV) of each element of the training data and, with "
                                   "training.init_from, of the checkpoint")
        return [by_number[z] for z in atomic_numbers]
    present = sorted(elements(frames))
    fit = dict(zip(present, reference_energies(frames, present)))
    return [fit[z] if z in fit else kept[k] for k, z in enumerate(atomic_numbers)]


def prepare_data(cfg: Config) -> PreparedData:
    """Read, validate and split the data, then derive the model's data-dependent settings (fine-tuning: take those
    of the training.init_from checkpoint, see fine_tuning_start)."""
    t, d = cfg.training, cfg.data
    need = dict(need_energy=t.energy_weight > 0, need_forces=t.forces_weight > 0, need_stress=t.stress_weight > 0)
    keys = dict(energy_key=d.energy_key, forces_key=d.forces_key, stress_key=d.stress_key)
    frames = read_frames(d.train_file, **keys, **need)
    if d.max_frames is not None:
        frames = frames[:d.max_frames]
    if d.valid_file:
        train_frames, valid_frames = frames, read_frames(d.valid_file, **keys, **need)
    else:
        i_train, i_valid = split_indices(len(frames), d.valid_fraction, t.seed, str(d.train_file))
        train_frames, valid_frames = [frames[i] for i in i_train], [frames[i] for i in i_valid]
    init = model_from_payload(load_checkpoint(t.init_from), t.init_from) if t.init_from else None
    atomic_numbers = init.config.atomic_numbers if init is not None else sorted(elements(train_frames))
    owner, fix = (("the training.init_from checkpoint", "fine-tune on its elements only, or train a new model")
                  if init is not None else ("the training frames", "include every element in the training set"))
    for where, part in ((str(d.train_file), train_frames), (str(d.valid_file or d.train_file), valid_frames)):
        foreign = sorted(elements(part) - set(atomic_numbers))
        if foreign:
            raise MLANetInputError(where, f"element(s) {symbols(foreign)} absent from {owner} "
                                   f"({symbols(atomic_numbers)})", fix)
    m = cfg.model
    if d.lazy:
        train = GraphDataset(train_frames, m.cutoff, atomic_numbers, d.cache_dir)
        valid = GraphDataset(valid_frames, m.cutoff, atomic_numbers, d.cache_dir)
    else:
        train = [frame_to_graph(f, m.cutoff, atomic_numbers) for f in train_frames]
        valid = [frame_to_graph(f, m.cutoff, atomic_numbers) for f in valid_frames]
    if init is not None:
        model_config, initial_state = fine_tuning_start(init, cfg, train_frames)
    else:
        initial_state = None
        # a lazy data set's graphs are built one by one (by the data loader workers) and dropped after this pass
        graphs = DataLoader(train, batch_size=None, num_workers=d.num_workers) if d.lazy else train
        stats = neighbour_statistics(graphs, len(atomic_numbers))
        model_config = m.to_model_config(
            atomic_numbers,
            repulsion_radii=switch_radii(atomic_numbers, m.cutoff, stats.shortest),
            avg_num_neighbors=stats.avg_num_neighbors,
            reference_energies=element_reference_energies(train_frames, atomic_numbers, d.e0s),
            energy_scale=force_rms(train_frames))
    return PreparedData(train, valid, valid_frames, model_config, file_sha256([d.train_file, d.valid_file]),
                        initial_state)


def fine_tuning_start(init: MLANet, cfg: Config, train_frames: Sequence[Frame]
                      ) -> Tuple[ModelConfig, Dict[str, torch.Tensor]]:
    """The model configuration and weights a fine-tuning run starts from: those of the checkpoint (`init`, float64),
    data-derived settings (config.py NOT_OPTIONS) included, except that training.refit_references sets the reference
    energies anew from data.e0s or the training frames (elements absent from the frames keep the checkpoint's)."""
    if not cfg.training.refit_references:
        return init.config, init.state_dict()
    buffer = init.energy_scale.reference_energies
    refs = element_reference_energies(train_frames, init.config.atomic_numbers, cfg.data.e0s, buffer.tolist())
    with torch.no_grad():
        buffer.copy_(torch.tensor(refs, dtype=buffer.dtype))
    return replace(init.config, reference_energies=refs), init.state_dict()


def loss_sums(pred: Prediction, batch: GraphBatch, kind: str, delta: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Summed losses [3] of per-atom energy (eV/atom), force components (eV/Å) and stress components (eV/Å^3) over
    the labelled items of `batch`, and the counts [4] of those items and of the structures (float, for summing over
    processes): the mean losses are sums / counts[:3] once both are summed over every part of a global batch."""

    def summed(p: torch.Tensor, r: torch.Tensor) -> Tuple[torch.Tensor, int]:
        ok = torch.isfinite(r)  # unlabelled items are left out (p itself may be NaN, e.g. the stress of a molecule)
        if kind == "mse":
            value = ((p[ok] - r[ok]) ** 2).sum()
        elif kind == "l1":
            value = (p[ok] - r[ok]).abs().sum()
        else:
            value = torch.nn.functional.huber_loss(p[ok], r[ok], reduction="sum", delta=delta)
        return value, int(ok.sum())

    n = batch.num_atoms.to(pred.energy.dtype)
    parts = [summed(pred.energy / n, batch.energy / n), summed(pred.forces, batch.forces),
             summed(pred.stress, batch.stress)]
    counts = [c for _, c in parts] + [batch.num_graphs]
    return torch.stack([v for v, _ in parts]), torch.tensor(counts, dtype=pred.energy.dtype, device=n.device)


def ema_with_warmup(decay: float):
    """EMA update with the usual warm-up: decay_t = min(decay, (1 + t) / (10 + t)) after t updates, so short runs
    are not dominated by the initial weights."""

    def avg_fn(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        if not averaged.is_floating_point():  # integer buffers (atomic numbers) are copied, never averaged
            return current
        n = float(num_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
        return d * averaged + (1.0 - d) * current

    return avg_fn


def make_ema(model: torch.nn.Module, decay: float) -> AveragedModel:
    """Exponential moving average of `model`'s parameters and floating-point buffers (see ema_with_warmup)."""
    return AveragedModel(model, avg_fn=ema_with_warmup(decay), use_buffers=True)


class Trainer:
    """Holds the model, optimiser, schedule, EMA and counters of one training run, or of this process's part of a
    data-parallel run (`ranks`: every process holds the same weights; rank 0 alone writes files)."""

    def __init__(self, cfg: Config, data: PreparedData, log: Callable[[str], None] = print, ranks: Ranks = SINGLE):
        self.cfg, self.data, self.log, self.ranks = cfg, data, log, ranks
        t = cfg.training
        self.dtype = parse_dtype(t.dtype, "training.dtype")
        self.device = resolve_device(t.device, ranks.local_rank, where="training.device")
        self.out = Path(t.output_dir)
        self.max_time = parse_duration(t.max_time)
        torch.manual_seed(t.seed)
        with traced_tensor_products() if t.compile else nullcontext():
            self.model = MLANet(data.model_config).to(device=self.device, dtype=self.dtype)
        if data.initial_state is not None:  # fine-tuning; loaded after the cast, so float64 weights stay exact
            self.model.load_state_dict(data.initial_state)
        # energy and force-loss gradients of a training step; over several processes, DDP averages the gradients
        self.energy_grad: torch.nn.Module = (CompiledTrainingGradient(self.model) if t.compile else
                                             EnergyAndEdgeGradient(self.model, create_graph=True))
        if ranks.size > 1:
            # DDP warns once that the gradient of the readout's [1, H] weight has other strides than its bucket:
            # with a dimension of size 1 both are the same order in memory, and DDP copies those H numbers
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
            self.energy_grad = DistributedDataParallel(
                self.energy_grad, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.stage = 1
        self.loss_weights = self.stage_weights()
        self.ema = make_ema(self.model, t.ema_decay) if t.ema_decay > 0 else None
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        if t.lr_schedule == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, factor=t.lr_factor, patience=t.lr_patience, min_lr=t.min_lr)
        elif t.lr_schedule == "cosine":
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.cosine_factor)
        else:
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)
        train, valid = data.train, data.valid
        if not cfg.data.lazy:  # every graph moved to the device once
            train, valid = ([g.to(self.device, self.dtype) for g in graphs] for graphs in (train, valid))
        workers = cfg.data.num_workers
        self.train_batches = GlobalBatches(len(train), t.batch_size, ranks, seed=t.seed)
        self.train_loader = DataLoader(train, batch_sampler=self.train_batches, collate_fn=collate,
                                       num_workers=workers)
        self.valid_loader = DataLoader(valid, batch_sampler=shard(len(valid), t.batch_size, ranks),
                                       collate_fn=collate, num_workers=workers)
        self.epoch = 0
        self.best_loss = math.inf
        self.best_epoch = -1
        self.bad_epochs = 0
        self.elapsed = 0.0
        self.history: List[Dict[str, float]] = []

    def progress(self, epoch: int) -> float:
        """The fraction of the run done after `epoch` epochs: the larger of the epoch fraction and the used fraction
        of max_time, at most 1."""
        progress = epoch / self.cfg.training.max_epochs
        if self.max_time:
            progress = max(progress, getattr(self, "elapsed", 0.0) / self.max_time)
        return min(progress, 1.0)

    def cosine_factor(self, epoch: int) -> float:
        """Cosine decay from lr to min_lr over the run (`progress`), so a time-budgeted run also ends at min_lr."""
        t = self.cfg.training
        lr = t.min_lr + 0.5 * (t.lr - t.min_lr) * (1.0 + math.cos(math.pi * self.progress(epoch)))
        return lr / t.lr

    def stage_weights(self) -> torch.Tensor:
        """The loss weights [energy, forces, stress] of the current stage."""
        t = self.cfg.training
        weights = ([t.energy_weight, t.forces_weight] if self.stage == 1 else
                   [t.stage_two_energy_weight, t.stage_two_forces_weight])
        return torch.tensor(weights + [t.stress_weight], dtype=self.dtype, device=self.device)

    def start_stage_two_when_due(self) -> None:
        """Enter stage two (training.stage_two) once the run's progress reaches it: the stage's loss weights, and the
        best validation loss forgotten (losses of other weights do not compare), so that best.ckpt, early stopping
        and the plateau schedule count this stage's epochs only."""
        t = self.cfg.training
        if self.stage == 2 or t.stage_two <= 0 or self.progress(self.epoch) < t.stage_two:
            return
        self.stage = 2
        self.loss_weights = self.stage_weights()
        self.best_loss, self.bad_epochs = math.inf, 0
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.best, self.scheduler.num_bad_epochs = self.scheduler.mode_worse, 0
        self.log(f"stage two from epoch {self.epoch + 1}: energy weight {t.stage_two_energy_weight:g}, forces "
                 f"weight {t.stage_two_forces_weight:g}; best.ckpt is chosen among this stage's epochs")

    # -- state -------------------------------------------------------------------------------------------------
    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def eval_state(self) -> Dict[str, torch.Tensor]:
        """Weights used for inference (EMA if enabled), as float64 on the CPU."""
        return {k: v.detach().to("cpu", torch.float64) if v.is_floating_point() else v.detach().cpu()
                for k, v in self.eval_model.state_dict().items()}

    def train_state(self) -> Dict:
        return {"model": self.model.state_dict(), "ema": None if self.ema is None else self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "epoch": self.epoch, "best_loss": self.best_loss, "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs, "elapsed": self.elapsed, "history": self.history, "stage": self.stage,
                "dtype": self.cfg.training.dtype}

    def load_train_state(self, path: Path) -> None:
        payload = load_checkpoint(path)
        state = payload.get("train_state")
        if state is None:
            raise MLANetInputError(str(path), "checkpoint has no training state", "resume from last.ckpt")
        if payload["model_config"] != self.data.model_config.to_dict():
            raise MLANetInputError(str(path), "model settings or training data differ from the run being resumed",
                                   "resume with the same config and data, or start a new output_dir")
        if state["dtype"] != self.cfg.training.dtype:
            raise MLANetInputError(str(path), f"checkpoint was trained in {state['dtype']}",
                                   "resume with the same training.dtype")
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        keys = ("epoch", "best_loss", "best_epoch", "bad_epochs", "elapsed", "history", "stage")
        missing = [key for key in keys if key not in state]
        if missing:
            raise MLANetInputError(str(path), f"the training state lacks {', '.join(missing)}: it was written by an "
                                   "older mlanet_lammps", "resume it with that version, or start a new output_dir")
        for key in keys:
            setattr(self, key, state[key])
        self.loss_weights = self.stage_weights()

    def save(self, name: str, with_train_state: bool, metrics: Dict[str, float]) -> Path:
        path = self.out / name
        extra = {"metrics": metrics, "epoch": self.epoch, "config": self.cfg.to_dict(),
                 "data_sha256": self.data.data_hash}
        if with_train_state:
            extra["train_state"] = self.train_state()
        save_checkpoint(path, self.data.model_config, self.eval_state(), **extra)
        return path

    def write_csv(self) -> None:
        if not self.history:
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(self.history[0].keys()))
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write_bytes(self.out / "metrics.csv", buf.getvalue().encode())

    # -- steps ---------------------------------------------------------------------------------------------------
    def weighted(self, sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """The weighted loss of summed losses [3] over the counts [4] of loss_sums."""
        return (self.loss_weights * sums / counts[:3].clamp(min=1)).sum()

    def metrics(self, acc: ErrorAccumulator) -> Dict[str, float]:
        """The error metrics of the predictions that `acc` collected on every process."""
        parts = self.ranks.gather(acc.arrays())
        return error_metrics({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})

    def validate(self) -> Tuple[float, Dict[str, float]]:
        """The weighted loss over the whole validation set (sums over counts of every item, so independent of how
        the frames are batched or shared out) and its error metrics."""
        t = self.cfg.training
        acc = ErrorAccumulator()
        totals = torch.zeros(7, dtype=self.dtype, device=self.device)  # loss_sums' sums [3] and counts [4]
        model = self.eval_model.eval()
        for batch in self.valid_loader:
            batch = batch.to(self.device, self.dtype)
            pred = predict(model, batch)
            sums, counts = loss_sums(pred, batch, t.loss, t.huber_delta)
            totals += torch.cat([sums.detach(), counts])
            acc.update(pred, batch)
        totals = self.ranks.sum(totals)
        return float(self.weighted(totals[:3], totals[3:])), self.metrics(acc)

    def out_of_time(self, start: float) -> bool:
        return self.max_time is not None and self.elapsed + (time.perf_counter() - start) >= self.max_time

    def optimisation_step(self, batch: GraphBatch, step: int = 0) -> Tuple[Prediction, torch.Tensor, float]:
        """One optimisation step on this process's part of a global batch (on the device): the prediction, the
        counts [4] of the global batch and its loss. Each process's loss is normalised by the global batch's counts,
        so that the gradient DDP averages is that of one process training on the whole global batch."""
        t = self.cfg.training
        pred = predict_with(self.energy_grad, batch)
        sums, counts = loss_sums(pred, batch, t.loss, t.huber_delta)
        counts = self.ranks.sum(counts)
        part = self.weighted(sums, counts)  # this process's share of the global batch's loss
        loss = float(self.ranks.sum(part.detach()))
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"non-finite loss ({loss}) at epoch {self.epoch + 1}, step {step + 1}; the last "
                f"good checkpoint is kept in {self.out / 'last.ckpt'}. Fix: lower training.lr, enable grad_clip, "
                "or check the data")
        self.optimizer.zero_grad(set_to_none=True)
        (part * self.ranks.size).backward()  # DDP divides the summed gradients by the number of processes
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return pred, counts, loss

    def run_epoch(self, start: float, bar: Optional[tqdm]) -> Tuple[float, Dict[str, float], bool]:
        """One epoch of optimisation steps; returns the mean training loss, the error metrics and whether the time
        budget ran out. Each step's loss is normalised by the counts of its global batch (over every process), so
        that the gradient DDP averages is that of one process training on the whole global batch."""
        self.train_batches.set_epoch(self.epoch)
        self.energy_grad.train()
        acc = ErrorAccumulator()
        total, count, timed_out = 0.0, 0, False
        for step, batch in enumerate(self.train_loader):
            batch = batch.to(self.device, self.dtype)
            pred, counts, loss = self.optimisation_step(batch, step)
            graphs = int(counts[3])
            total += loss * graphs
            count += graphs
            acc.update(Prediction(pred.energy.detach(), pred.forces.detach(), pred.stress.detach(),
                                  pred.atom_energy.detach(), pred.atom_uncertainty), batch)
            if bar is not None:
                bar.set_postfix_str(f"epoch {self.epoch + 1} step {step + 1} loss {total / count:.4g}", refresh=True)
            if self.ranks.from_main(self.out_of_time(start)):
                timed_out = True
                break
        return total / max(count, 1), self.metrics(acc), timed_out

    def tensorboard_writer(self):
        """A TensorBoard SummaryWriter on output_dir/tensorboard (training.tensorboard)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MLANetInputError("training.tensorboard", "needs the tensorboard package",
                                   "pip install tensorboard (in this venv), or set tensorboard: false") from None
        return SummaryWriter(log_dir=str(self.out / "tensorboard"), purge_step=self.epoch + 1)

    def fit(self) -> Dict[str, float]:
        t = self.cfg.training
        self.out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        # the bar only on a terminal: in batch jobs and pipes, one log line per epoch instead
        show_bar = t.progress and sys.stderr.isatty() and self.ranks.main
        bar = tqdm(total=t.max_epochs, initial=self.epoch, desc="mlanet-train", unit="epoch",
                   disable=not show_bar, dynamic_ncols=True)
        board = self.tensorboard_writer() if t.tensorboard and self.ranks.main else None
        stop_reason = "max_epochs"
        try:
            while self.epoch < t.max_epochs:
                epoch_start = time.perf_counter()
                self.start_stage_two_when_due()
                train_loss, train_metrics, timed_out = self.run_epoch(start, bar)
                val_loss, val_metrics = self.validate()
                self.epoch += 1
                self.elapsed = self.ranks.from_main(self.elapsed + time.perf_counter() - start)  # one clock
                start = time.perf_counter()
                lr = self.optimizer.param_groups[0]["lr"]
                if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    self.scheduler.step(val_loss)
                else:
                    self.scheduler.step()
                improved = val_loss < self.best_loss
                if improved:
                    self.best_loss, self.best_epoch, self.bad_epochs = val_loss, self.epoch, 0
                else:
                    self.bad_epochs += 1
                row = {"epoch": self.epoch, "stage": self.stage, "lr": lr, "train_loss": train_loss,
                       "val_loss": val_loss,
                       **{f"train_{k}": v for k, v in train_metrics.items() if k != "frames"},
                       **{f"val_{k}": v for k, v in val_metrics.items() if k != "frames"},
                       "epoch_time_s": time.perf_counter() - epoch_start}
                self.history.append(row)
                if board is not None:
                    for name, value in row.items():
                        if name != "epoch":
                            board.add_scalar(name, value, self.epoch)
                    board.flush()
                if self.ranks.main:
                    if improved:
                        self.save("best.ckpt", False, val_metrics)
                    self.save("last.ckpt", True, val_metrics)
                    self.write_csv()
                summary = (f"loss {train_loss:.4g} val E {val_metrics.get('energy_rmse', float('nan')):.3g} meV/at "
                           f"F {val_metrics.get('forces_rmse', float('nan')):.4g} meV/Å")
                bar.update(1)
                bar.set_postfix_str(summary, refresh=True)
                if not show_bar:
                    self.log(f"epoch {self.epoch}/{t.max_epochs} lr {lr:.3g} {summary}{' *' if improved else ''} "
                             f"({row['epoch_time_s']:.1f} s)")
                stop = None
                if timed_out or self.out_of_time(start):
                    stop = "max_time"
                elif t.early_stopping_patience and self.bad_epochs >= t.early_stopping_patience:
                    stop = "early_stopping"
                stop = self.ranks.from_main(stop)  # every process stops after the same epoch
                if stop is not None:
                    stop_reason = stop
                    break
        finally:
            bar.close()
            if board is not None:
                board.close()
        best = self.history[self.best_epoch - 1] if self.best_epoch > 0 else {}
        self.log(f"stopped ({stop_reason}) after {self.epoch} epochs, {self.elapsed:.1f} s; "
                 f"best epoch {self.best_epoch}: "
                 f"val energy RMSE {best.get('val_energy_rmse', float('nan')):.3f} meV/atom, "
                 f"force RMSE {best.get('val_forces_rmse', float('nan')):.2f} meV/Å -> {self.out / 'best.ckpt'}")
        return {"stop_reason": stop_reason, "epochs": self.epoch, "elapsed_s": self.elapsed,
                "best_epoch": self.best_epoch, **{k: v for k, v in best.items() if k.startswith("val_")}}


def train(cfg: Config, resume: bool = False, log: Callable[[str], None] = print) -> Dict[str, float]:
    """Train MLANet as configured; with `resume`, continue exactly from output_dir/last.ckpt. Under torchrun, each
    process trains its share of every global batch (training.batch_size structures over all processes) and rank 0
    alone writes and logs (train/distributed.py)."""
    ranks = ranks_from_env()
    with process_group(ranks, resolve_device(cfg.training.device, ranks.local_rank, where="training.device")):
        return train_process(cfg, ranks, resume, log if ranks.main else (lambda _: None))


def train_process(cfg: Config, ranks: Ranks, resume: bool, log: Callable[[str], None]) -> Dict[str, float]:
    """The work of one process of `train` (`log`: a no-op on ranks other than 0)."""
    t = cfg.training
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    random.seed(t.seed)
    np.random.seed(t.seed)
    data = prepare_data(cfg)
    if min(t.batch_size, len(data.train)) < ranks.size:
        raise MLANetInputError("training.batch_size", f"{t.batch_size} structures per step ({len(data.train)} "
                               f"training frames) cannot be shared by {ranks.size} processes",
                               "set batch_size (the global batch of all processes) to at least the number of "
                               "processes, or start fewer")
    if t.uncertainty != "none":  # before training, not after it
        check_labels(data.valid_frames, "validation frames (training.uncertainty)")
    trainer = Trainer(cfg, data, log, ranks)
    last = Path(t.output_dir) / "last.ckpt"
    if resume:
        trainer.load_train_state(last)
        log(f"resuming from {last} at epoch {trainer.epoch}")
    elif last.exists():
        raise MLANetInputError(str(last), "output_dir already holds a training run",
                               "pass --resume to continue it, or choose another training.output_dir")
    if ranks.main:  # the validation frames, for mlanet-eval on exactly these frames
        write_frames(Path(t.output_dir) / "valid.extxyz", data.valid_frames)
    n_train, n_valid = len(data.train), len(data.valid)
    if t.init_from:
        log(f"fine-tuning {t.init_from} ({'new' if t.refit_references else 'its'} reference energies)")
    processes = f", {ranks.size} processes" if ranks.size > 1 else ""
    log(f"{n_train} training / {n_valid} validation frames; elements {data.model_config.atomic_numbers}; "
        f"{sum(p.numel() for p in trainer.model.parameters())} parameters; device {trainer.device}, {t.dtype}"
        f"{processes}")
    summary = trainer.fit()
    if ranks.main and trainer.best_epoch > 0:  # the best model: its uncertainty, its errors per config_type, element
        if t.uncertainty != "none":
            model = load_model(trainer.out / "best.ckpt", dtype=trainer.dtype, device=trainer.device)
            head = fit_uncertainty(model, data.train, data.valid_frames, t.uncertainty, t.batch_size)
            save_with_uncertainty(trainer.out / "best.ckpt", trainer.out / "best.ckpt", head)
            log(f"uncertainty: {head!r}, calibrated on the {n_valid} validation frames")
        best = load_model(trainer.out / "best.ckpt", dtype=trainer.dtype, device=trainer.device)
        tests = [("validation", data.valid_frames)]
        if cfg.data.test_file:
            tests.append(("test", read_frames(cfg.data.test_file, cfg.data.energy_key, cfg.data.forces_key,
                                              cfg.data.stress_key, need_energy=False, need_forces=False,
                                              allowed_numbers=data.model_config.atomic_numbers)))
        for name, frames in tests:
            report = error_report(frames, predict_frames(best, frames, t.batch_size, trainer.device, trainer.dtype))
            log(f"{name} errors of {trainer.out / 'best.ckpt'}:\n{report.text()}")
            if name == "test":
                summary.update({f"test_{k}": v for k, v in report.metrics.items()})
    return summary
