"""bench/gpu_use.py's sampler, on a stand-in for NVML: two GPUs, one busy and one idle."""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parent.parent / "bench"))  # bench/ holds scripts, not a package


@pytest.fixture
def two_gpus(monkeypatch):
    """GPU 0 runs kernels all the time with 10 GiB in use, at 1,755 MHz and 600 W held by its power
    cap; GPU 1 never does, holds 1 GiB and idles at 345 MHz."""
    nvml = types.ModuleType("pynvml")
    nvml.NVMLError = RuntimeError
    nvml.nvmlInit = lambda: None
    nvml.nvmlDeviceGetCount = lambda: 2
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i
    nvml.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=100 if h == 0 else 0)
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=(10 if h == 0 else 1) * 2**30)
    nvml.NVML_CLOCK_SM = 1
    nvml.nvmlDeviceGetClockInfo = lambda h, kind: (1755 if h == 0 else 345) if kind == 1 else 0
    nvml.nvmlDeviceGetPowerUsage = lambda h: 600_000 if h == 0 else 90_000  # milliwatts
    nvml.nvmlDeviceGetCurrentClocksThrottleReasons = lambda h: 0x4 if h == 0 else 0x1  # power cap / idle
    monkeypatch.setitem(sys.modules, "pynvml", nvml)


def test_each_gpu_is_summarised_on_its_own_line(two_gpus):
    from gpu_use import Sampler

    with Sampler(period=0.01) as sampler:
        time.sleep(0.2)
    frame = sampler.frame()
    assert set(frame["gpu"]) == {0, 1} and len(frame) >= 10
    busy, busy_clock, idle, idle_clock = sampler.summary().splitlines()
    assert busy.startswith("GPU 0: utilisation mean 100%, median 100%, idle in 0% of")
    assert busy.endswith("memory peak 10.0 GiB")
    assert (
        busy_clock
        == "  SM clock while busy 1755-1755 MHz, median 1755; power peak 600 W; slowed by power or heat in 100% of samples"
    )
    assert idle.startswith("GPU 1: utilisation mean 0%, median 0%, idle in 100% of")
    assert idle_clock == "  never busy; power peak 90 W; slowed by power or heat in 0% of samples"


def test_a_machine_without_nvml_is_one_line(monkeypatch):
    nvml = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    def init() -> None:
        raise NVMLError("NVML Shared Library Not Found")

    nvml.NVMLError, nvml.nvmlInit = NVMLError, init
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    from gpu_use import Sampler

    with pytest.raises(RuntimeError, match="NVML cannot be read here .* no NVIDIA GPU or driver"):
        Sampler()
