"""Evaluate a trained model on labelled structures: metrics and raw prediction/reference pairs."""

from typing import Dict, Sequence, Tuple

import numpy as np
import torch

from .data.batch import collate, frame_to_graph
from .data.io import Frame
from .metrics import ErrorAccumulator
from .model.mlanet import MLANet
from .predict import predict


def evaluate_frames(model: MLANet, frames: Sequence[Frame], batch_size: int = 8, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float64) -> Tuple[Dict[str, float], Dict[str, np.ndarray]]:
    """Metrics (meV/atom, meV/Å, meV/Å^3) and prediction/reference arrays of `model` on `frames`."""
    model = model.to(device=device, dtype=dtype).eval()
    cutoff = float(model.cutoff)
    numbers = model.atomic_numbers.tolist()
    acc = ErrorAccumulator()
    for i in range(0, len(frames), batch_size):
        batch = collate([frame_to_graph(f, cutoff, numbers) for f in frames[i:i + batch_size]]).to(device, dtype)
        acc.update(predict(model, batch), batch)
    return acc.result(), acc.arrays()
