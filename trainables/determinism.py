"""The determinism contract, applied inside the trial process before any CUDA work.

Every mode gets identical seeding, precision flags and cuBLAS workspace; modes differ only in the
three switches that the reference study toggled together: deterministic algorithms,
cudnn.deterministic and cudnn.benchmark. Anything else that differed would be measured as "CUDA
noise". Two physical sources hide behind the paper's non-deterministic setting, and a mode each
isolates one:
- the autotuner: with cudnn.benchmark on, each process times candidate kernels and may pick
  another one than the last process did (autotuner-only keeps every kernel deterministic);
- the kernels: some are not bitwise reproducible even when the same one runs, e.g. those that
  accumulate with atomics (kernels-only fixes cuDNN's choice by its heuristic instead of timing).
"""

from __future__ import annotations

import os
import random
import warnings
from typing import NamedTuple

import numpy as np
import torch

# why: cuBLAS needs a fixed workspace for deterministic results; set in both modes so the modes
# differ only in the switches below (":4096:8" is the larger of the two values NVIDIA documents).
CUBLAS_WORKSPACE = ":4096:8"


class Switches(NamedTuple):
    deterministic_algorithms: bool  # torch.use_deterministic_algorithms: only deterministic kernels, or fail
    cudnn_deterministic: bool  # cuDNN may pick only deterministic convolution algorithms
    cudnn_benchmark: bool  # cuDNN times the candidates in this process and keeps the fastest


SWITCHES = {
    "deterministic": Switches(True, True, False),
    "nondeterministic": Switches(False, False, True),  # the paper's setting: both sources at once
    "autotuner-only": Switches(
        True, True, True
    ),  # runs can differ only through which deterministic kernel wins the timing
    "kernels-only": Switches(
        False, False, False
    ),  # one heuristic choice; runs differ only inside non-deterministic kernels
}


def seed_everything(seed: int) -> None:
    """Seed every global RNG a model, optimizer or library might draw from."""
    seed_host(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device, lazily


def seed_host(seed: int) -> None:
    """Seed the host's global RNGs only: for DataLoader workers, which never use the GPU, once per
    example. There, torch.manual_seed's lazy seeding of CUDA records a stack trace at every call:
    0.2-0.3 ms, 10-18% of what a synthetic SDNET image cost a DataLoader worker (bench/RESULTS.md,
    2026-12-01)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.random.default_generator.manual_seed(seed)


def set_precision(conv_tf32: bool, matmul_tf32: bool) -> None:
    """Fix float32 conv/matmul precision explicitly, identically in both modes."""
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):  # torch >= 2.9
        torch.backends.cuda.matmul.fp32_precision = "tf32" if matmul_tf32 else "ieee"
        torch.backends.cudnn.conv.fp32_precision = "tf32" if conv_tf32 else "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
        torch.backends.cudnn.allow_tf32 = conv_tf32


def apply(mode: str, seed: int, conv_tf32: bool, matmul_tf32: bool, warn_only: bool) -> None:
    """Put this process into `mode`; must run before the first CUDA call of the trial."""
    if os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE) != CUBLAS_WORKSPACE:
        raise RuntimeError(
            f"CUBLAS_WORKSPACE_CONFIG is {os.environ['CUBLAS_WORKSPACE_CONFIG']!r}; "
            f"the study needs {CUBLAS_WORKSPACE!r} in both modes"
        )
    switches = SWITCHES[mode]
    seed_everything(seed)
    set_precision(conv_tf32, matmul_tf32)
    torch.use_deterministic_algorithms(switches.deterministic_algorithms, warn_only=warn_only)
    torch.backends.cudnn.deterministic = switches.cudnn_deterministic
    torch.backends.cudnn.benchmark = switches.cudnn_benchmark


def current() -> Switches:
    """The three switches as torch holds them now (recorded with each trial's result)."""
    return Switches(
        torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    )


class NondeterministicOpLog:
    """Collects torch's 'no deterministic implementation' warnings (--det-warn-only).

    The run goes on, but each op is recorded once so the results say the trial was not fully
    deterministic and which op broke it.
    """

    def __init__(self) -> None:
        self.ops: list[str] = []
        self._catch = warnings.catch_warnings()

    def __enter__(self) -> NondeterministicOpLog:
        self._catch.__enter__()  # restores filters and showwarning on exit
        warnings.simplefilter("always")  # why: the default shows a warning once per code line
        previous = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
            text = str(message)
            if "deterministic" not in text:
                previous(message, category, filename, lineno, file, line)
            elif text not in self.ops:
                self.ops.append(text)

        warnings.showwarning = show
        return self

    def __exit__(self, *exc: object) -> None:
        self._catch.__exit__(*exc)
