"""Files a trial keeps beside its results: per-epoch last-layer weights and final predictions.

They are written to the trial's directory, which Ray Tune syncs to the experiment's storage
(sync_artifacts), so the similarity and churn analyses work from the experiment directory alone,
also for trials that ran on other nodes of a cluster.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from layout import LAST_LAYER_FILE, PREDICTIONS_FILE, epoch_key


def append_last_layer(directory: Path, epoch: int, layer: nn.Module) -> dict[str, torch.Tensor]:
    """Add this epoch's last-layer weights to one zip per trial (a .npz), not a file per epoch;
    returns them by entry name, for the checkpoint."""
    arrays = {epoch_key(epoch, name): p.detach().float().cpu().clone() for name, p in layer.named_parameters()}
    with zipfile.ZipFile(directory / LAST_LAYER_FILE, "a") as archive:
        _write(archive, arrays)
    return arrays


def write_last_layers(directory: Path, arrays: dict[str, torch.Tensor]) -> None:
    """Rewrite the file with exactly these epochs: after a restart, the epochs up to its checkpoint."""
    with zipfile.ZipFile(directory / LAST_LAYER_FILE, "w") as archive:
        _write(archive, arrays)


def _write(archive: zipfile.ZipFile, arrays: dict[str, torch.Tensor]) -> None:
    for name, tensor in arrays.items():
        with archive.open(f"{name}.npy", "w") as f:
            np.lib.format.write_array(f, tensor.numpy())


def save_predictions(directory: Path, labels: np.ndarray, probs: np.ndarray, epoch: int) -> None:
    np.savez(directory / PREDICTIONS_FILE, labels=labels, probs=probs.astype(np.float32), epoch=np.int64(epoch))
