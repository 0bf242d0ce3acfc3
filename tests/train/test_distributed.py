"""Data-parallel training (mlanet_lammps/train/distributed.py): 2 processes under torchrun (gloo, CPU, float64) end
with the weights, losses and metrics of 1 process with the same global batch, also across a resume; rank 0 alone
writes and logs; the global batches are split over the processes; lazy and eager graphs train alike."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from mlanet_lammps.checkpoint import load_checkpoint
from mlanet_lammps.errors import MLANetInputError
from mlanet_lammps.train import loop
from mlanet_lammps.train.config import config_from_dict
from mlanet_lammps.train.distributed import GlobalBatches, Ranks, shard
from tests.conftest import FORMATE, ROOT
from tests.train.test_training import TINY

QUIET = {"log": lambda _: None}


def formate_config(out: Path, **training) -> dict:
    """8 training / 2 validation formate frames (52 atoms); a global batch of 3 gives the 2 processes shares of 2
    and 1 frames, so a loss normalised per process instead of per global batch would show."""
    t = {"output_dir": str(out), "max_epochs": 2, "batch_size": 3, "lr": 0.01, "dtype": "float64",
         "progress": False, "num_threads": 1, "uncertainty": "none"}
    t.update(training)
    return {"data": {"train_file": str(FORMATE), "max_frames": 10, "valid_fraction": 0.2}, "model": dict(TINY),
            "training": t}


def torchrun(config: Path, *args: str, timeout: float = 600) -> str:
    """mlanet-train on 2 processes (torchrun, gloo); its stdout."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "mlanet_lammps.cli.train", str(config), *args],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def assert_same_run(a: Path, b: Path):
    """Equal training states (model, EMA, optimiser moments) and history of the last.ckpt files `a`, `b`."""
    sa, sb = (load_checkpoint(p)["train_state"] for p in (a, b))
    for key in sa["model"]:
        torch.testing.assert_close(sa["model"][key], sb["model"][key], rtol=0, atol=1e-12)
    for key in sa["ema"]:
        torch.testing.assert_close(sa["ema"][key], sb["ema"][key], rtol=0, atol=1e-12)
    for k, moments in sa["optimizer"]["state"].items():
        torch.testing.assert_close(moments["exp_avg_sq"], sb["optimizer"]["state"][k]["exp_avg_sq"], rtol=1e-9,
                                   atol=1e-20)
    assert len(sa["history"]) == len(sb["history"])
    for ra, rb in zip(sa["history"], sb["history"]):
        for name in ("train_loss", "val_loss", "train_forces_rmse", "val_forces_rmse", "val_energy_rmse"):
            assert ra[name] == pytest.approx(rb[name], rel=1e-11), name


def test_two_processes_train_and_resume_as_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    loop.train(config_from_dict(formate_config(one, max_epochs=1)), **QUIET)
    shutil.copy(one / "last.ckpt", tmp_path / "one_epoch1.ckpt")
    loop.train(config_from_dict(formate_config(one, max_epochs=2)), resume=True, **QUIET)

    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(formate_config(two)))
    out = torchrun(path, "training.max_epochs=1")
    assert out.count("epoch 1/1") == 1 and "2 processes" in out  # rank 0 alone logs
    assert_same_run(tmp_path / "one_epoch1.ckpt", two / "last.ckpt")
    torchrun(path, "--resume")
    assert_same_run(one / "last.ckpt", two / "last.ckpt")
    assert (two / "metrics.csv").read_text().count("\n") == 3  # header + 2 epochs, written by rank 0 alone
    assert sorted(p.name for p in two.iterdir()) == ["best.ckpt", "last.ckpt", "metrics.csv", "valid.extxyz"]


def test_two_processes_stop_together_on_the_time_budget(tmp_path):
    """The time budget is rank 0's clock, broadcast every step: were the processes to stop at different steps, the
    one still training would wait forever for the other's gradients."""
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(formate_config(tmp_path / "run", max_epochs=1000, max_time="2s")))
    out = torchrun(path, timeout=300)
    assert "stopped (max_time)" in out
    assert 1 <= load_checkpoint(tmp_path / "run" / "last.ckpt")["epoch"] < 1000


def test_lazy_graphs_train_as_eager_ones(tmp_path):
    """The same statistics and, step for step, the same weights, whether every graph is built up front or each
    batch's graphs are built by a data loader worker (and cached on disk)."""
    runs = {}
    for name, data in (("eager", {"lazy": False}), ("lazy", {"lazy": True, "num_workers": 1,
                                                             "cache_dir": str(tmp_path / "cache")})):
        raw = formate_config(tmp_path / name, max_epochs=1)
        raw["data"].update(data)
        cfg = config_from_dict(raw)
        runs[name] = loop.prepare_data(cfg).model_config.to_dict()
        loop.train(cfg, **QUIET)
    assert runs["lazy"] == runs["eager"]
    assert len(list((tmp_path / "cache").iterdir())) == 10  # the graph of every training and validation frame
    assert_same_run(tmp_path / "eager" / "last.ckpt", tmp_path / "lazy" / "last.ckpt")


def test_global_batches_are_split_over_processes():
    one = GlobalBatches(9, 4, Ranks(), seed=3)
    two = [GlobalBatches(9, 4, Ranks(rank, 2), seed=3) for rank in (0, 1)]
    for epoch in (0, 1):
        for b in (one, *two):
            b.set_epoch(epoch)
        batches = one.global_batches()
        assert sorted(sum(batches, [])) == list(range(9)) and [len(b) for b in batches] == [4, 4, 1]
        shares = list(zip(*two))
        assert len(shares) == 2  # the last global batch, of 1 frame, cannot be split over 2 processes
        for batch, (a, b) in zip(batches, shares):
            assert sorted(a + b) == sorted(batch) and len(a) == len(b) == 2
    one.set_epoch(0)
    assert one.global_batches() != batches  # a new order each epoch
    assert [shard(5, 2, Ranks(r, 2)) for r in (0, 1)] == [[[0, 2], [4]], [[1, 3]]]
    assert shard(1, 2, Ranks(1, 2)) == []


def test_global_batch_smaller_than_processes_is_an_error(tmp_path):
    cfg = config_from_dict(formate_config(tmp_path, batch_size=3))
    with pytest.raises(MLANetInputError, match="3 structures per step .* cannot be shared by 4 processes") as err:
        loop.train_process(cfg, Ranks(0, 4), resume=False, log=lambda _: None)
    assert "\n" not in str(err.value)
