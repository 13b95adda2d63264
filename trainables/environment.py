"""What a result must say about where it came from, and the GPU's energy counter."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket

import torch

GIT_COMMIT_ENV = "CUDA_RANDOMNESS_GIT_COMMIT"  # set by the driver for every worker
NODE_ENV = "CUDA_RANDOMNESS_RAY_NODE"  # set by the trainable's Ray side: which node of a cluster ran the trial


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _nvml():
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # no driver, no library, no GPU: energy is then simply not reported
        return None


def gpu_uuid(device: torch.device) -> str:
    """The GPU's UUID as NVML and nvidia-smi print it. Ray narrows CUDA_VISIBLE_DEVICES, so every
    trial's device is cuda:0; the UUID says which of a host's GPUs it was."""
    uuid = str(torch.cuda.get_device_properties(device).uuid)
    return uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"


def describe(device: torch.device) -> dict[str, object]:
    """Versions, hardware and commit, flat so every logger can store them."""
    env: dict[str, object] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "ray": _version("ray"),
        "timm": _version("timm"),
        "numpy": _version("numpy"),
        "host": socket.gethostname(),
        "node": os.environ.get(NODE_ENV) or None,  # why: nodes of one machine share a host name
        "pid": os.getpid(),
        "parent_pid": os.getppid(),  # why: the slot a forked trial came from (trainables/forked.py)
        "platform": platform.platform(),
        "git_commit": os.environ.get(GIT_COMMIT_ENV) or None,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "gpu_uuid": gpu_uuid(device) if device.type == "cuda" else None,
        "driver": None,
    }
    nvml = _nvml() if device.type == "cuda" else None
    if nvml is not None:
        driver = nvml.nvmlSystemGetDriverVersion()
        env["driver"] = driver.decode() if isinstance(driver, bytes) else driver
    return env


class EnergyMeter:
    """Joules the trial's GPU used, from its cumulative energy counter (Volta and newer).

    The counter covers the whole GPU, so with several trials on one GPU it counts their
    neighbours too; gpu_energy_j is the raw figure and energy_j apportions it by the GPU share.
    """

    def __init__(self, device: torch.device) -> None:
        self._nvml = _nvml() if device.type == "cuda" else None
        self._handle, self._start = None, None
        if self._nvml is not None:
            try:
                self._handle = self._nvml.nvmlDeviceGetHandleByUUID(gpu_uuid(device))
                self._start = self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)  # mJ
            except Exception:
                self._handle = None

    def joules(self) -> float | None:
        if self._handle is None:
            return None
        return (self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) - self._start) / 1000.0
